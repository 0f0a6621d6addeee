"""What the project's tests share beyond the fixtures that :mod:`vtopt.testing` ships to plugin authors
(``vtopt_pm``, ``vtopt_images``, ``vtopt_run``), which the tests use too."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ICONS = Path(__file__).parent / "data" / "icons"


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance (2 CPUs) for every test that needs it; skipped without Ray."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


def expected_score(row: dict, floor: float = 0.005) -> float:
    """The standard reward of a result row, worked out here from its SSIM and bytes (not by vtopt's scorer):
    ssim - 0.02 log2(bytes / defaults' bytes), and below the defaults' score when under the quality floor."""
    import math

    score = row["ssim"] - 0.02 * math.log2(row["bytes"] / row["default_bytes"])
    excess = row["default_ssim"] - floor - row["ssim"]
    return min(score, row["default_score"]) - excess if excess > 0 else score


def install_fake_plugin(tmp_path: Path, monkeypatch, entry: str, module: str, dist: str, version: str,
                        source: str) -> None:
    """A real distribution on sys.path (a module and its .dist-info), found through entry points."""
    import textwrap

    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    info = tmp_path / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[vtopt]\n{entry} = {module}\n")
    monkeypatch.syspath_prepend(str(tmp_path))


def write_config(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


TINY_RUN = """\
run: {name: tiny, seed: 1, timesteps: 96, checkpoint_every: 64}
data:
  synthetic: {per_kind: 3}
  validation_split: 0.34
  image_size: 48
env: {conversions_per_episode: 3, parallel_envs: 1}
algorithm: {name: ppo, params: {n_steps: 32, batch_size: 32, n_epochs: 1}}
curriculum: {name: staged, params: {window: 2, max_timesteps: 16}}
monitors: [{name: structlog, params: {console: false}}]
"""
