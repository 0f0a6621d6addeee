"""vtopt.training.driver on its own: what happens after each training step, fed real episodes of a real
env in this process (the vector env is a stand-in that records what the driver sends it)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from vtopt.config.checks import load_config
from vtopt.env.gymenv import VTracerEnv
from vtopt.env.scoring import build_scorer
from vtopt.errors import VtoptError
from vtopt.plugin.components import RunInfo
from vtopt.testing import TINY_CONFIG
from vtopt.training.checkpoints import restore_rng
from vtopt.training.driver import Driver
from vtopt.training.parts import Part
from vtopt.training.runfiles import HISTORY


class Envs:
    """Stands in for the training envs: the driver only tells them things (``env_method``)."""

    def __init__(self):
        self.calls: list[tuple] = []

    def env_method(self, name, *args):
        self.calls.append((name, *args))


class Picky:
    """A curriculum with knobs: its weights, its stage and the algorithm settings of that stage."""

    def __init__(self, weights, overrides=None):
        self.w, self.overrides = weights, overrides or {}

    def start(self, kinds):
        pass

    def weights(self):
        return self.w

    def stage(self):
        return "only"

    def record(self, kind, score, timesteps):
        pass

    def algorithm_overrides(self):
        return self.overrides

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@pytest.fixture
def make_driver(tmp_path, vtopt_pm, vtopt_images):
    """``make_driver(overrides, curriculum=None, resumed=False)`` -> (driver, episodes): a driver on the random
    search algorithm, and a function giving ``n`` real finished episodes."""
    pm = vtopt_pm()
    path = tmp_path / "c.yaml"
    path.write_text(TINY_CONFIG)
    images = vtopt_images[::2]  # one of each kind

    def make(overrides=(), curriculum=None, resumed=False):
        cfg = load_config(path, ["algorithm={name: random}", *overrides], pm).config
        kinds = sorted({im.kind for im in images})
        if curriculum is None:
            curriculum = pm.create("curriculum", cfg.curriculum.name, cfg.curriculum.params)
            curriculum.start(kinds)
        scorer = build_scorer(pm, cfg)
        run = RunInfo(cfg.run.name, tmp_path / "run", cfg, cfg.run.timesteps, 1, kinds, resumed=resumed)
        run.out_dir.mkdir(exist_ok=True)
        driver = Driver(run, pm, Envs(), curriculum, pm.create("algorithm", "random", {}), scorer, images[:2])
        env = VTracerEnv(images, scorer, cfg.env.conversions_per_episode)
        rng = np.random.default_rng(0)

        def episodes(n: int) -> list[dict]:
            infos = []
            for _ in range(n):
                env.reset()
                done = False
                while not done:
                    _, _, done, _, info = env.step(rng.uniform(-1, 1, env.action_space.shape).astype(np.float32))
                infos.append(info)
            return infos

        return driver, episodes

    return make


def _history(driver) -> list[dict]:
    return [json.loads(line) for line in (driver.run.out_dir / HISTORY).read_text().splitlines()]


def test_episodes_reach_the_history_and_the_curriculum_and_the_run_stops_at_its_total(make_driver):
    # threshold 1.0: no stage is mastered by the random episodes, only ended by max_timesteps (deterministic)
    driver, episodes = make_driver(["curriculum={name: staged, params: {window: 1, max_timesteps: 4, threshold: 1.0}}"])
    driver.begin()
    assert driver.env.calls == [("set_kind_weights", {"simple": 1.0})]
    assert driver.on_step(episodes(2), [True], 8)
    assert not driver.on_step([{}], [False], 64)  # the total is reached
    driver.end()
    events = [(e["event"], e["timesteps"], e.get("previous"), e.get("stage")) for e in _history(driver)]
    # the first episode at 8 ends the first stage (past its max_timesteps)
    assert events == [("stage_changed", 0, None, "simple"), ("episode", 8, None, None),
                      ("stage_changed", 8, "simple", "text"), ("episode", 8, None, None)]
    assert driver.env.calls[-1][0] == "set_kind_weights" and driver.env.calls[-1][1]["text"] > 0
    assert driver.state()["episodes"] == 2


def test_checkpoints_keep_the_newest_and_a_resumed_driver_goes_on_from_one(make_driver):
    overrides = ["run.checkpoint_every=16", "run.keep_checkpoints=1",
                 "curriculum={name: staged, params: {window: 1, max_timesteps: 4, threshold: 1.0}}"]
    driver, episodes = make_driver(overrides)
    driver.begin()
    driver.on_step(episodes(1), [True], 8)
    driver.on_step(episodes(1), [True], 16)  # a checkpoint (the stage moved to text at 8)
    driver.on_step(episodes(1), [True], 32)  # another: the first is removed
    driver.end()
    folder = driver.run.out_dir / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step_000000032.json", "step_000000032.rng",
                                                        "step_000000032.zip"]
    state = json.loads((folder / "step_000000032.json").read_text())
    assert state["checkpoints"] == ["checkpoints/step_000000032.zip"] and state["episodes"] == 3
    with open(driver.run.out_dir / HISTORY, "a") as fh:
        fh.write('{"event": "episode", "timesteps": 40, "kind": "te')  # cut short by a killed run

    # resumed from the state as of timesteps 16: what came after it goes from the history
    state16 = {**state, "timesteps": 16, "episodes": 2, "stage": "text", "checkpoints": []}
    resumed, _ = make_driver(overrides, resumed=True)
    resumed.restore(state16)
    resumed.begin()
    resumed.end()
    assert resumed.timesteps == 16 and resumed.episodes.count == 2
    events = _history(resumed)
    assert max(e["timesteps"] for e in events[:-1]) == 16 and events[-1]["event"] == "stage_changed"
    assert (events[-1]["previous"], events[-1]["timesteps"]) == ("text", 16)  # the checkpoint's stage, not None


def test_the_rng_states_of_a_checkpoint_come_back(make_driver):
    driver, _ = make_driver(["run.checkpoint_every=16"])
    driver.begin()
    path = driver.checkpoint(16)
    expected = (random.random(), np.random.random())
    random.random(), np.random.random()
    restore_rng(path)
    driver.end()
    assert (random.random(), np.random.random()) == expected


def test_evaluations_keep_the_best_model_and_stop_a_run_that_no_longer_improves(make_driver):
    driver, _ = make_driver(["run.eval_every=16", "run.early_stop=1"])
    driver.begin()
    assert driver.on_step([], [False], 16)  # first evaluation: the best so far
    assert (driver.run.out_dir / "best_model.zip").is_file()
    assert not driver.on_step([], [False], 32)  # the same (seeded) policy scores the same: no better
    driver.end()
    assert driver.stop_reason == "early_stop"
    evaluated = [e for e in _history(driver) if e["event"] == "evaluated"]
    assert [e["timesteps"] for e in evaluated] == [16, 32] and evaluated[0]["mean_score"] == evaluated[1]["mean_score"]


def test_a_signal_stops_the_run_after_its_step(make_driver):
    driver, episodes = make_driver()
    driver.begin()
    driver.signal = 15
    assert not driver.on_step(episodes(1), [True], 4)
    driver.end()
    assert driver.stop_reason == "signal" and driver.state()["episodes"] == 1  # the step's episode counted


def test_a_part_may_not_keep_another_part_s_checkpoint_keys(make_driver):
    class Greedy(Part):
        def state(self, driver):
            return {"episodes": 0, "mine": 1}

    driver, _ = make_driver()
    driver.parts.append(Greedy())
    with pytest.raises(ValueError, match=r"^Greedy keeps \['episodes'\] in a checkpoint, which another part has$"):
        driver.state()


def test_a_curriculum_must_weigh_a_kind_in_the_data_and_its_settings_need_an_updatable_algorithm(make_driver):
    driver, _ = make_driver(curriculum=Picky({"logos": 1.0, "simple": 0.0}))
    with pytest.raises(VtoptError, match=r"^curriculum gives no weight to any kind in the data: "):
        driver.begin()
    driver.end()
    driver, _ = make_driver(curriculum=Picky({"simple": 1.0}, {"learning_rate": 0.1}))
    with pytest.raises(VtoptError, match=r"^the curriculum sets \['learning_rate'\] for stage 'only', but algorithm "
                                         r"'random' cannot change settings mid-run$"):
        driver.begin()
    driver.end()
