"""PPO over a discrete action space: imitation of an expert before reinforcement, and numpy inference."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO as SB3PPO
from stable_baselines3.common.vec_env import DummyVecEnv
from vtopt_sb3 import PPO, imitate, numpy_policy, predict_numpy

from vtopt import ParamError, VtoptError


class Pick(gym.Env):
    """Three steps an episode; the expert picks the largest of the first four inputs (reward 1 for it)."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (6,), dtype=np.float32)
    action_space = gym.spaces.Discrete(4)

    def __init__(self, expert: bool = True):
        self.expert = expert

    def _obs(self):
        self.state = self.np_random.uniform(-1, 1, 6).astype(np.float32)
        return self.state

    def _info(self):
        return {"expert_action": int(np.argmax(self.state[:4]))} if self.expert else {}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), self._info()

    def step(self, action):
        reward = float(int(action) == int(np.argmax(self.state[:4])))
        self.t += 1
        return self._obs(), reward, self.t >= 3, False, self._info()


def _agreement(predict, n=300) -> float:
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, (n, 6)).astype(np.float32)
    return float((np.asarray(predict(x)) == x[:, :4].argmax(1)).mean())


def test_imitation_teaches_the_expert_and_numpy_predicts_what_sb3_does():
    env = DummyVecEnv([Pick, Pick])
    model = SB3PPO("MlpPolicy", env, seed=0, device="cpu", n_steps=16, batch_size=32, verbose=0)
    before = _agreement(lambda x: model.predict(x, deterministic=True)[0])
    imitate(model, env, steps=1500, epochs=4, seed=0, batch=500)
    after = _agreement(lambda x: model.predict(x, deterministic=True)[0])
    assert before < 0.6 and after > 0.85, (before, after)
    net = numpy_policy(model)
    assert net is not None and net["ops"].tolist()[-1] == "argmax"
    x = np.random.default_rng(2).uniform(-1, 1, (50, 6)).astype(np.float32)
    assert (predict_numpy(net, x) == model.predict(x, deterministic=True)[0]).all()
    assert int(predict_numpy(net, x[0])) == int(model.predict(x[0], deterministic=True)[0])


def test_imitation_needs_an_expert():
    env = DummyVecEnv([lambda: Pick(expert=False)])
    model = SB3PPO("MlpPolicy", env, seed=0, device="cpu", n_steps=16, batch_size=16, verbose=0)
    with pytest.raises(VtoptError, match="no expert_action"):
        imitate(model, env, steps=100, epochs=1, seed=0)


@pytest.mark.parametrize("value", [-1, 1.5, True, "10"])
def test_imitate_must_be_a_count(value):
    with pytest.raises(ParamError, match="must be an integer >= 0, got") as err:
        PPO(imitate=value)
    assert err.value.key == "imitate"
