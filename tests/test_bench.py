"""What ``vtopt bench`` measures, run small (the figures themselves are printed by the bench, never asserted)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ICONS

from vtopt.cli.bench import labelling_rate
from vtopt.config.schema import default_config
from vtopt.env.scoring import build_scorer

#: What one image through ``optimize`` must not import (each costs start-up; none is needed for it).
HEAVY = ("torch", "stable_baselines3", "gymnasium", "matplotlib", "ray", "scipy", "skimage", "pandas",
         "concurrent.futures.process", "multiprocessing.popen_fork", "multiprocessing.popen_forkserver")


def test_labelling_and_bare_vtracer_convert_the_same_images(pm, tiny_images):
    scorer = build_scorer(pm, default_config(pm))
    labelled, bare, conversions = labelling_rate(tiny_images[:3], scorer, 2, 2)
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
