"""The first hour as a new user meets it (issue 24, part 7): import order, messages, tables."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO


def test_gymnasium_make_works_after_import_vtopt_alone():
    code = ("import sys, vtopt\n"
            "assert 'gymnasium' not in sys.modules  # import vtopt does not pay for it\n"
            "import gymnasium\n"
            "env = gymnasium.make('vtopt/VTracer-v0', conversions=2)\n"
            "print(env.unwrapped.__class__.__name__)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "plugins")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Env" in out.stdout


def test_a_missing_images_folder_is_said_not_to_exist(tmp_path):
    import gymnasium

    import vtopt
    from vtopt.vtracer.images import ImageError

    with pytest.raises(ImageError, match="no-such-dir: does not exist"):
        gymnasium.make(vtopt.GYM_ID, images=str(tmp_path / "no-such-dir"))
