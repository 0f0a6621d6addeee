"""vtopt.config.checks on its own: the checks that need the plugins and the disk, and the warnings."""

from __future__ import annotations

import os

import pytest
from PIL import Image

from vtopt.config.checks import check_config, config_warnings, load_config, runs_here
from vtopt.config.schema import read_config
from vtopt.errors import ConfigError
from vtopt.testing import TINY_CONFIG
from vtopt.vtracer.images import IMAGE_SUFFIXES

SUFFIXES = ", ".join(IMAGE_SUFFIXES)


def _loaded(tmp_path, extra: str = "", overrides=(), name: str = "c.yaml"):
    path = tmp_path / name
    path.write_text(TINY_CONFIG + extra)
    return read_config(path, list(overrides))


def _problems(tmp_path, pm, extra: str = "", overrides=()) -> dict[str, str]:
    """{dotted path: message} of every problem check_config finds."""
    return {".".join(map(str, parts)): msg for parts, msg in check_config(_loaded(tmp_path, extra, overrides), pm)}


def test_without_a_plugin_manager_only_the_schema_is_checked(tmp_path, vtopt_pm):
    path = tmp_path / "c.yaml"
    path.write_text(TINY_CONFIG.replace("name: ppo", "name: no-such-algorithm"))
    assert load_config(path).config.algorithm.name == "no-such-algorithm"
    with pytest.raises(ConfigError) as err:
        load_config(path, pm=vtopt_pm())
    assert err.value.lines == [f"{path}:4: $.algorithm.name: " + err.value.lines[0].split(": ", 2)[2]]
    assert "unknown algorithm 'no-such-algorithm'" in err.value.lines[0]


def test_a_valid_config_has_no_problems(tmp_path, vtopt_pm):
    assert _problems(tmp_path, vtopt_pm()) == {}


def test_a_pool_needs_pool_actions_and_its_extra_sets_are_checked(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    found = _problems(tmp_path, pm, "", ["env.pool={size: 4}"])
    assert "is used only with env.actions: pool (env.actions is 'box')" in found["env.pool"]
    found = _problems(tmp_path, pm, "", ["env.actions=pool", "env.pool={size: 4, extra: [{}, {mode: curvy}]}"])
    assert list(found) == ["env.pool.extra.1"] and "curvy" in found["env.pool.extra.1"]


def test_folders_a_file_an_empty_folder_hidden_sub_folders_and_optional_ones(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    (tmp_path / "a-file.png").write_bytes(b"not a folder")
    (tmp_path / "empty").mkdir()
    (tmp_path / "nested" / "simple").mkdir(parents=True)
    Image.new("RGB", (32, 32), "red").save(tmp_path / "nested" / "simple" / "red.png")
    (tmp_path / "hidden" / ".cache").mkdir(parents=True)
    Image.new("RGB", (32, 32), "red").save(tmp_path / "hidden" / ".cache" / "red.png")
    folders = ("[{path: a-file.png}, {path: empty}, {path: nested}, {path: nested, kind: text}, {path: hidden}, "
               "{path: gone, optional: true}]")
    found = _problems(tmp_path, pm, "", [f"data.folders={folders}"])
    assert found == {"data.folders.0.path": f"{tmp_path / 'a-file.png'} is not a folder",
                     "data.folders.1.path": f"{tmp_path / 'empty'} holds no image files ({SUFFIXES})",
                     "data.folders.3.path": f"{tmp_path / 'nested'} holds no image files ({SUFFIXES})",
                     "data.folders.4.path": f"{tmp_path / 'hidden'} holds no image files ({SUFFIXES})"}


def test_a_sweep_key_is_tried_with_a_drawn_value(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    found = _problems(tmp_path, pm, "sweep:\n  space:\n    env.parallel_envs: randint(-5, -1)\n"
                                    "    run.seed: uniform(1)\n    run.timesteps: randint(1, 9)\n")
    assert set(found) == {"sweep.space.env.parallel_envs", "sweep.space.run.seed"}
    assert found["sweep.space.env.parallel_envs"].startswith("setting it to -")
    assert "at least 1" in found["sweep.space.env.parallel_envs"]
    assert found["sweep.space.run.seed"] == "'uniform(1)': uniform takes two numbers"


def test_names_that_must_be_registered(tmp_path, vtopt_pm):
    found = _problems(tmp_path, vtopt_pm(), "postprocess: [lossless, shiny]\nresources: {executor: slurm}\n")
    assert set(found) == {"postprocess.1", "resources.executor"}
    assert found["postprocess.1"].startswith("unknown postprocessor 'shiny'; available: lossless")
    assert found["resources.executor"].startswith("unknown executor 'slurm'; available:")


def test_more_envs_than_cores_is_a_warning_only_where_the_envs_run_here(tmp_path, vtopt_pm):
    pm, cores = vtopt_pm(), os.cpu_count() or 1
    local = load_config(_loaded(tmp_path, "", [f"env.parallel_envs={cores + 2}"]).path,
                        [f"env.parallel_envs={cores + 2}"], pm)
    assert len(local.warnings) == 1
    assert local.warnings[0].startswith(f"{local.path}: --set env.parallel_envs={cores + 2}: $.env.parallel_envs: "
                                        f"warning: {cores + 2} envs on this machine's {cores} cores: the 2 beyond")
    assert local.warnings[0].endswith(f"set it to {cores}")
    remote = _loaded(tmp_path, "resources: {executor: ray}\n", [f"env.parallel_envs={cores + 2}"])
    assert config_warnings(remote, pm) == []  # a cluster's workers are not this machine's cores
    assert config_warnings(_loaded(tmp_path, "", [f"env.parallel_envs={cores}"]), pm) == []
    assert runs_here(pm.components("executor")["local"].factory)
    assert not runs_here(pm.components("executor")["ray"].factory)


def test_a_plugins_dotted_path_indexes_only_lists(tmp_path, vtopt_pm):
    from vtopt import hookimpl

    class Checker:
        @hookimpl
        def vtopt_check_config(self, config, algorithm, curriculum):
            return [("monitors.0.params.console", "a list index"), ("reward.weights.0", "a key that is a number")]

    found = _problems(tmp_path, vtopt_pm(Checker()))
    assert found == {"monitors.0.params.console": "a list index", "reward.weights.0": "a key that is a number"}
    problems = check_config(_loaded(tmp_path), vtopt_pm(Checker()))
    assert [parts for parts, _ in problems] == [["monitors", 0, "params", "console"], ["reward", "weights", "0"]]
