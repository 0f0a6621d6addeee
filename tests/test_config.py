import re

import pytest
from conftest import REPO, write_config

from vtopt.cli import main
from vtopt.config.checks import load_config
from vtopt.config.schema import PRESETS, preset_text
from vtopt.errors import ConfigError

LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<path>\$[^:]*): (?P<msg>.+)$")


def errors(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.strip().splitlines()


@pytest.mark.parametrize("preset", PRESETS)
def test_shipped_configs_validate(vtopt_pm, preset):
    pm = vtopt_pm()
    loaded = load_config(REPO / "configs" / f"{preset}.yaml", pm=pm)
    assert loaded.config.run.name == preset
    assert (REPO / "configs" / f"{preset}.yaml").read_text() == preset_text(preset)


@pytest.mark.parametrize("text, line, path, message", [
    ("run:\n  name: x\n  seeed: 3\n", 3, "$.run.seeed", "unknown key 'seeed'"),
    ("run:\n  seed: three\n", 2, "$.run.seed", "expected an integer"),
    ("run:\n  seed: 1.5\n", 2, "$.run.seed", "expected an integer"),
    ("env:\n  parallel_envs: 0\n", 2, "$.env.parallel_envs", "at least 1"),
    ("env:\n  conversions_per_episode: 1\n", 2, "$.env.conversions_per_episode", "must be in [2, 1000]"),
    ("algorithm:\n  name: dqn\n", 2, "$.algorithm.name", "unknown algorithm 'dqn'; available: a2c (from sb3), "),
    ("algorithm:\n  name: ppo\n  params:\n    n_step: 64\n", 4, "$.algorithm.params.n_step",
     "algorithm 'ppo' takes no parameter 'n_step'; it takes: batch_size"),
    ("curriculum:\n  name: staged\n  params: {window: 0}\n", 3, "$.curriculum.params.window", "integer >= 1"),
    ("curriculum:\n  name: staged\n  params:\n    windw: 3\n", 4, "$.curriculum.params.windw",
     "curriculum 'staged' takes no parameter 'windw'; it takes: max_timesteps, overrides, replay, stages, threshold"),
    ("algorithm:\n  name: chooser\n  params: {hiden: 3}\n", 3, "$.algorithm.params.hiden",
     "algorithm 'chooser' takes no parameter 'hiden'; it takes: diagnostics, epochs, extra, hidden,"),
    ("reward:\n  weights: {ssim_rgb: 1.0}\n  params:\n    ssim_rgb: {window: 9}\n", 4,
     "$.reward.params.ssim_rgb.window", "metric 'ssim_rgb' takes no parameter 'window'; it takes none"),
    ("reward:\n  weights: {ssim_rgb: 1.0}\n  params:\n    size: {}\n", 4, "$.reward.params.size",
     "metric 'size' has params but no weight in reward.weights"),
    ("monitors:\n  - name: tensorboardx\n", 2, "$.monitors[0].name", "unknown monitor 'tensorboardx'"),
    ("reward:\n  weights: {ssim: 1.0, sharpness: 0.5}\n", 2, "$.reward.weights.sharpness", "unknown metric 'sharpness'"),
    ("resources:\n  device: gpu\n", 2, "$.resources.device", "'gpu' is not one of 'auto', 'cpu', 'cuda'"),
    ("data:\n  folders:\n    - path: no/such/folder\n", 3, "$.data.folders[0].path", "does not exist"),
    ("data:\n  synthetic: null\n", 1, "$.data", "no images"),
    ("data:\n  folders: [{path: .}]\n", 2, "$.data.folders[0].path", "holds no image files"),
    ("run: [1, 2]\n", 1, "$.run", "expected a mapping"),
    ("- a\n- b\n", 1, "$", "must be a mapping"),
    ("run:\n  name: a\n  name: b\n", 3, "$", "duplicate key"),
    ("run:\n\tname: a\n", 2, "$", "YAML error"),
    ("", 1, "$", "empty"),
    ("reward:\n  weights: {ssim: .nan}\n", 2, "$.reward.weights.ssim", "finite"),
    ("algorithm:\n  params:\n    n_steps: -5\n", 3, "$.algorithm.params.n_steps", "PPO rejects these params"),
    ("algorithm:\n  params:\n    policy_kwargs: {foo: 1}\n", 2, "$.algorithm.params", "unexpected keyword argument 'foo'"),
    ("data:\n  synthetic: {kinds: []}\n", 2, "$.data.synthetic.kinds", "non-empty list"),
    ("data:\n  synthetic: {kinds: [text, text]}\n", 2, "$.data.synthetic.kinds", "named once"),
    ("data:\n  synthetic: {kinds: [logos]}\n", 2, "$.data.synthetic.kinds", "'logos' is not one of"),
    ("env:\n  conversions_per_episode: -4\n", 2, "$.env.conversions_per_episode", "out of range"),
    ("run:\n  timesteps: 0\n", 2, "$.run.timesteps", "at least 1"),
    ("data:\n  image_size: 100000\n", 2, "$.data.image_size", "must be in [16, 4096]"),
    ("data:\n  validation_split: 1.5\n", 2, "$.data.validation_split", "must be in [0, 0.9]"),
    ("env:\n  conversion_timeout: -1\n", 2, "$.env.conversion_timeout", "at least 0"),
    ("monitors: structlog\n", 1, "$.monitors", "expected a list"),
    ("algorithm:\n  params: [1, 2]\n", 2, "$.algorithm.params", "expected a mapping"),
    ("training:\n  steps: 5\n", 1, "$.training", "unknown key 'training'"),
    ("run:\n  name: a/b\n", 2, "$.run.name", "not a valid name"),
    ("curriculum:\n  params:\n    overrides: {complex: {learning_rte: 0.1}}\n", 3,
     "$.curriculum.params.overrides.complex", "cannot change ['learning_rte'] mid-run"),
    ("sweep:\n  space:\n    run.timestepz: randint(1, 5)\n", 3, "$.sweep.space.run.timestepz", "unknown key 'timestepz'"),
    ("data:\n  folders:\n    - {kind: simple}\n", 3, "$.data.folders[0].path", "required key missing"),
])
def test_bad_configs_exit_2_with_file_line_path(tmp_path, capsys, text, line, path, message):
    cfg = write_config(tmp_path, text)
    for command in ("validate", "run"):
        code, lines = errors(capsys, [command, str(cfg), "--out", str(tmp_path / "out")] if command == "run"
                             else [command, str(cfg)])
        assert code == 2, lines
        parsed = [LINE.match(l) for l in lines]
        assert all(parsed), lines
        hit = [m for m in parsed if m["path"] == path and message in m["msg"]]
        assert hit, lines
        assert hit[0]["file"] == str(cfg) and int(hit[0]["line"]) == line
    assert not (tmp_path / "out").exists()


def test_all_problems_are_reported_at_once(tmp_path, capsys):
    cfg = write_config(tmp_path, "run:\n  seed: x\n  bogus: 1\nenv:\n  parallel_envs: -2\n")
    code, lines = errors(capsys, ["validate", str(cfg)])
    assert code == 2 and len(lines) == 3


def test_overrides_take_effect_and_errors_name_them(tmp_path, capsys, vtopt_pm):
    pm = vtopt_pm()
    cfg = write_config(tmp_path, "run:\n  name: a\n")
    loaded = load_config(cfg, ["run.seed=7", "algorithm.params.n_steps=16", "data.synthetic.kinds=[text]"], pm)
    assert loaded.config.run.seed == 7
    assert loaded.config.algorithm.params == {"n_steps": 16}
    assert loaded.config.data.synthetic.kinds == ["text"]
    code, lines = errors(capsys, ["validate", str(cfg), "--set", "run.seed=-1"])
    assert code == 2 and lines == [f"{cfg}: --set run.seed=-1: $.run.seed: -1 is out of range: must be at least 0"]


def test_alias_bomb_is_refused(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        bomb += f"{chr(97 + i)}: &{chr(97 + i)} [*{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}, *{chr(96 + i)}]\n"  # noqa: E501
    with pytest.raises(ConfigError, match="nodes \\(mappings, lists and values\\)"):
        load_config(write_config(tmp_path, bomb), pm=pm)


def test_yaml_tags_construct_no_objects(tmp_path, vtopt_pm):
    pm = vtopt_pm()
    cfg = write_config(tmp_path, "run:\n  name: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError):
        load_config(cfg, pm=pm)


def test_init_writes_a_preset_and_refuses_to_overwrite(tmp_path, capsys, vtopt_pm):
    pm = vtopt_pm()
    target = tmp_path / "my.yaml"
    assert main(["init", str(target), "--preset", "cpu"]) == 0
    assert "# vtopt config" in target.read_text()
    load_config(target, pm=pm)
    target.write_text("mine")
    assert main(["init", str(target), "--preset", "cpu"]) == 1
    assert "--force" in capsys.readouterr().err and target.read_text() == "mine"
    assert main(["init", str(target), "--preset", "debug", "--force"]) == 0
    assert load_config(target, pm=pm).config.run.name == "debug"


def test_cli_usage_errors_return_codes(capsys, tmp_path):
    assert main(["frobnicate"]) == 2
    assert main(["--version"]) == 0
    assert main(["init", str(tmp_path), "--force"]) == 1  # a folder: one line, no traceback
    err = capsys.readouterr().err
    assert "Traceback" not in err and "vtopt: error:" in err


def test_run_time_data_problems_are_one_line_errors(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.png").write_text("not an image")
    cfg = write_config(tmp_path, f"data:\n  folders: [{{path: {empty}}}]\n")
    assert main(["run", str(cfg), "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "holds no usable image" in err and "notes.png" in err and "Traceback" not in err
    cfg = write_config(tmp_path, "data: {validation_split: 0.0, synthetic: {per_kind: 2}}\n", "b.yaml")
    assert main(["run", str(cfg), "--out", str(tmp_path / "b")]) == 1
    assert "no validation images" in capsys.readouterr().err
    cfg = write_config(tmp_path, "curriculum: {params: {stages: [simple, txt]}}\ndata: {synthetic: {per_kind: 2}}\n", "c.yaml")
    assert main(["run", str(cfg), "--out", str(tmp_path / "c")]) == 1
    assert "stages ['txt'] are not kinds in the data" in capsys.readouterr().err
