"""What ``vtopt bench`` measures, run small (the figures themselves are printed by the bench, never asserted)."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from conftest import ICONS

from vtopt.cli.bench import _image_sets, env_rate, labelling_rate, replay_rate, stage_times, training_params, training_rate
from vtopt.config.checks import load_config
from vtopt.config.schema import PRESETS_DIR, default_config
from vtopt.env.scoring import build_scorer
from vtopt.errors import VtoptError

#: What one image through ``optimize`` must not import (each costs start-up; none is needed for it).
HEAVY = ("torch", "stable_baselines3", "gymnasium", "matplotlib", "ray", "scipy", "skimage", "pandas",
         "concurrent.futures.process", "multiprocessing.popen_fork", "multiprocessing.popen_forkserver")


def test_labelling_and_bare_vtracer_convert_the_same_images(vtopt_pm, vtopt_images):
    pm = vtopt_pm()
    scorer = build_scorer(pm, default_config(pm))
    labelled, bare, conversions = labelling_rate(vtopt_images[:3], scorer, 2, 2)
    assert conversions == 3 * (2 + 1)  # each image's defaults and the candidates
    assert labelled > 0 and bare > 0


def test_one_image_optimize_imports_only_what_it_needs(tmp_path):
    image = sorted(ICONS.glob("*.png"))[0]
    code = ("import sys\nfrom vtopt.cli import main\n"
            f"code = main(['-q', 'optimize', {str(image)!r}, '--out', {str(tmp_path)!r}, '--budget', '3'])\n"
            f"print(code, [m for m in {HEAVY!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split("\n")[-2] == "0 []", out  # the image was optimised, and nothing heavy came in
    assert (tmp_path / f"{image.stem}.svg").is_file()


def test_stage_times_are_per_conversion_figures_of_every_stage(vtopt_pm, vtopt_images):
    import numpy as np

    from vtopt.vtracer.params import action_size

    pm = vtopt_pm()
    scorer = build_scorer(pm, default_config(pm))
    actions = [np.random.default_rng(i).uniform(-1, 1, action_size()).astype(np.float32) for i in range(2)]
    t = stage_times(vtopt_images[:2], scorer, actions)
    assert set(t) == {"vtracer_alone", "env_step", "convert", "render", "metrics", "env_step_mean",
                      "features_per_image", "overhead"}
    assert all(math.isfinite(v) for v in t.values())
    assert all(t[k] > 0 for k in ("vtracer_alone", "env_step", "convert", "render", "metrics", "features_per_image"))


def test_the_bench_trains_the_cpu_preset_s_algorithm_on_its_envs(vtopt_pm, vtopt_images):
    """What ``vtopt bench`` trains: the cpu preset's algorithm without its imitation (which needs labels),
    on subprocess envs of the box env; and env stepping and label replay, each for a moment."""
    pm = vtopt_pm()
    preset = load_config(PRESETS_DIR / "cpu.yaml").config
    scorer = build_scorer(pm, preset)
    params = {**training_params(preset.algorithm.params), "n_steps": 16, "batch_size": 16, "n_epochs": 1}
    assert "imitate" in preset.algorithm.params and "imitate" not in params
    algorithm = pm.create("algorithm", preset.algorithm.name, params)
    assert training_rate(algorithm, vtopt_images[:4], scorer, 1, 32) > 0
    rate, rss = env_rate(vtopt_images[:4], scorer, 1, 0.2)
    assert rate > 0 and len(rss) == 1 and rss[0] > 10  # one env process, its peak memory in MB
    assert replay_rate(vtopt_images[:4], scorer, 0.05, pool_size=8) > 0


def test_image_sets_a_folder_that_is_not_one_or_holds_nothing_usable(tmp_path):
    sets = _image_sets(None, 48, 1)
    assert list(sets) == ["synthetic"] and len(sets["synthetic"]) == 4
    with pytest.raises(VtoptError, match=f"^{tmp_path / 'nope'}: not a folder of images$"):
        _image_sets(tmp_path / "nope", 48, 1)
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(VtoptError, match=fr"^{tmp_path}: no usable image \(1 rejected\)$"):
        _image_sets(tmp_path, 48, 1)
    icons = _image_sets(ICONS, 320, 1)[ICONS.name]  # above the icons' 256 px: scaled up to measure that size
    assert icons and all(im.size == (320, 320) for im in icons)
