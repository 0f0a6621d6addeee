"""Train from Python with a plugin registered in code (no entry point), then read the results.

    python examples/programmatic.py [RUN_DIR]

The plugin adds a metric ("contrast": how well the rendering keeps the
original's spread of grey levels) used in the reward, and listens to two run
events. Everything else comes from the built-in plugins.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from vtopt import PluginManager, hookimpl, load_config, train


class Contrast:
    """1 - |std(rendered) - std(original)| / 128, on grey levels."""

    def prepare(self, image):
        return float(image.gray.std())

    def compute(self, sample, state):
        return 1.0 - abs(float(sample.gray.std()) - state) / 128.0


class MyPlugin:
    def __init__(self):
        self.stages = []

    @hookimpl
    def vtopt_register_metrics(self):
        return {"contrast": Contrast}

    @hookimpl
    def vtopt_stage_changed(self, stage, timesteps):
        self.stages.append((timesteps, stage))

    @hookimpl
    def vtopt_evaluated(self, evaluation):
        print(f"evaluated: mean score {evaluation['mean_score']:.4f} "
              f"(defaults {evaluation['default_mean_score']:.4f})")


CONFIG = """\
run: {name: programmatic, seed: 0, timesteps: 192}
data: {synthetic: {per_kind: 4}, validation_split: 0.25, image_size: 64}
env: {conversions_per_episode: 3, parallel_envs: 1}
algorithm: {name: ppo, params: {n_steps: 64, batch_size: 64, n_epochs: 2}}
curriculum: {name: staged, params: {window: 4, max_timesteps: 48}}
reward: {weights: {ssim_rgb: 1.0, size: -0.02, contrast: 0.05}}
monitors: [{name: structlog, params: {console: false}}]
"""


def main(run_dir: Path) -> dict:
    plugin = MyPlugin()
    pm = PluginManager()
    pm.register(plugin, name="my-plugin")  # no entry point: registered from code

    config_path = run_dir.parent / f"{run_dir.name}.yaml"
    config_path.write_text(CONFIG)
    loaded = load_config(config_path, pm=pm)  # checked against the registries, "contrast" included
    summary = train(loaded, run_dir, pm, force=True)

    # Read the results back from the run directory.
    on_disk = json.loads((run_dir / "summary.json").read_text())
    assert on_disk["total_timesteps"] == summary["total_timesteps"]
    ev = on_disk["evaluation"]
    print(f"trained {on_disk['total_timesteps']} timesteps; stages: {plugin.stages}")
    print(f"held-out images: SSIM {ev['mean_ssim']:.4f} vs {ev['default_mean_ssim']:.4f}, "
          f"bytes x{ev['bytes_ratio']:.2f} of VTracer's defaults")
    rows = on_disk["evaluation_rows"]
    print(f"{len(rows)} per-image rows, e.g. {rows[0]['image']}: score {rows[0]['score']:.4f}")
    return on_disk


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "run"
    target.parent.mkdir(parents=True, exist_ok=True)
    main(target)
    print(f"run directory: {target}")
