import math

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from vtopt.config.schema import default_config
from vtopt.env.gymenv import FAILURE_REWARD, VTracerEnv
from vtopt.env.scoring import build_scorer
from vtopt.vtracer import vectorize
from vtopt.vtracer.params import action_size


@pytest.fixture
def env(vtopt_pm, vtopt_images):
    pm = vtopt_pm()
    return VTracerEnv(vtopt_images, build_scorer(pm, default_config(pm)), conversions=4)


def test_passes_gymnasium_env_checker(env):
    check_env(env, skip_render_check=True)


def test_episode_return_is_best_minus_defaults(env):
    rng = np.random.default_rng(0)
    for episode in range(4):
        obs, _ = env.reset(seed=episode)
        assert env.observation_space.contains(obs)
        total, steps, done = 0.0, 0, False
        while not done:
            obs, reward, done, truncated, info = env.step(rng.uniform(-1, 1, action_size()).astype(np.float32))
            assert reward >= 0 and not truncated
            total += reward
            steps += 1
        ep = info["vtopt_episode"]
        assert steps == 3  # the defaults' conversion is the first of four
        assert total == pytest.approx(ep["score"] - ep["default_score"], abs=1e-12)
        assert ep["improvement"] >= 0


def test_kind_weights_choose_the_images(env):
    env.set_kind_weights({"text": 1.0})
    for seed in range(10):
        env.reset(seed=seed)
        assert env.image.kind == "text"


def test_failed_conversion_is_clearly_bad_and_does_not_end_the_episode(env, monkeypatch):
    env.reset(seed=0)

    def boom(image, params):
        raise vectorize.ConversionError("synthetic VTracer failure")

    import vtopt.env.scoring as scoring

    monkeypatch.setattr(scoring, "convert", boom)
    obs, reward, done, _, info = env.step(np.zeros(action_size(), np.float32))
    assert reward == FAILURE_REWARD < 0
    assert not done and info["error"] == "synthetic VTracer failure"
    _, reward2, _, _, _ = env.step(np.ones(action_size(), np.float32))
    assert reward2 == FAILURE_REWARD
    assert env.best is env.default and env.failures == 2


def test_a_real_vtracer_panic_is_survived(env, monkeypatch):
    # let color_precision=0 through the parameter check, so the binding panics
    env.reset(seed=0)
    monkeypatch.setattr(vectorize, "check_params", lambda p: {**p, "color_precision": 0})
    _, reward, done, _, info = env.step(np.zeros(action_size(), np.float32))
    assert reward == FAILURE_REWARD and "PanicException" in info["error"] and not done
    assert math.isinf(env.scorer.evaluate(env.image, {"mode": "polygon"}).score)
