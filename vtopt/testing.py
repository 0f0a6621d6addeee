"""pytest fixtures for plugin authors (loaded through the ``pytest11`` entry point).

    def test_my_metric(vtopt_pm, vtopt_images):
        pm = vtopt_pm(MyPlugin())              # built-ins + entry points + yours
        metric = pm.create("metric", "mine")

    def test_a_run(vtopt_run):
        summary, run_dir = vtopt_run("reward: {weights: {ssim: 1.0, mine: 0.1}}", plugins=[MyPlugin()])

Fixtures: ``vtopt_pm`` (a factory of fresh plugin managers), ``vtopt_images``
(eight small synthetic logos, two per kind), ``vtopt_run`` (a real tiny
training run: real VTracer, real SB3, about two seconds).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

#: The base of every ``vtopt_run``: tiny but complete (training, a checkpoint, evaluation).
TINY_CONFIG = """\
run: {name: tiny, seed: 0, timesteps: 64, checkpoint_every: 64}
data: {synthetic: {per_kind: 3}, validation_split: 0.34, image_size: 48}
env: {conversions_per_episode: 3, parallel_envs: 1}
algorithm: {name: ppo, params: {n_steps: 32, batch_size: 32, n_epochs: 1}}
curriculum: {name: uniform}
monitors: [{name: structlog, params: {console: false}}]
"""


@pytest.fixture
def vtopt_pm() -> Callable[..., Any]:
    """``vtopt_pm(*plugins)``: a fresh PluginManager with ``plugins`` registered from code."""
    from vtopt.plugin.manager import PluginManager

    def make(*plugins: Any, autoload: bool | None = None):
        pm = PluginManager(autoload=autoload)
        for plugin in plugins:
            pm.register(plugin)
        return pm

    return make


@pytest.fixture(scope="session")
def vtopt_images():
    """Eight small synthetic logos (48 px), two of each kind."""
    from vtopt.vtracer.synthetic import KINDS, generate

    return [generate(kind, i, seed=0, size=48) for kind in KINDS for i in range(2)]


@pytest.fixture
def vtopt_run(tmp_path: Path, vtopt_pm) -> Callable[..., tuple[dict, Path]]:
    """``vtopt_run(yaml_overlay="", plugins=(), overrides=())`` -> (summary, run_dir).

    Trains for real on :data:`TINY_CONFIG` with ``yaml_overlay``'s top-level
    sections replacing its own, and ``--set``-style ``overrides``.
    """
    from ruamel.yaml import YAML

    from vtopt.config.checks import load_config
    from vtopt.config.yamlfile import to_yaml
    from vtopt.training.run import train

    def run(yaml_overlay: str = "", plugins: Iterable[Any] = (), overrides: Iterable[str] = ()):
        yaml = YAML(typ="safe", pure=True)
        doc = {**yaml.load(TINY_CONFIG), **(yaml.load(yaml_overlay) or {})}
        path = tmp_path / "vtopt-tiny.yaml"
        path.write_text(to_yaml(doc))
        pm = vtopt_pm(*plugins)
        run_dir = tmp_path / "run"
        summary = train(load_config(path, list(overrides), pm), run_dir, pm, force=True)
        return summary, run_dir

    return run
