# Set-up and the two main jobs. `make run` and `make test` each do every
# set-up step on a fresh machine (a virtual environment in .venv).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch's CPU build: on PyPI an unpinned torch is a multi-GB CUDA build.
# Where no local CPU wheel exists, point TORCH_INDEX at a CPU wheel index.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: install run test clean

$(BIN)/vtopt: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/vtopt

run: install
	$(BIN)/vtopt run configs/debug.yaml --out runs/debug --force

test: install
	@# the report test opens a page in Debian's headless Chromium (needs root to install; skipped without it outside CI)
	-command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)
	$(BIN)/ruff check vtopt plugins tests examples
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs build *.egg-info
