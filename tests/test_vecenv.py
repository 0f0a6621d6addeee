"""vtopt's vector env base (``vtopt.HostedVecEnv``): stepping, stacking and replacing a dead host,
over a transport that only sends and receives; here an in-process one, in test_faults and test_ray
the subprocesses and Ray actors."""

import numpy as np
import pytest

import vtopt
from vtopt.config.schema import default_config
from vtopt.env.gymenv import VTracerEnv
from vtopt.env.scoring import build_scorer
from vtopt.env.vecenv import stack_obs


class InProcess(vtopt.HostedVecEnv):
    """Each host in this process; ``kill(i)`` makes slot i's host die at its next command."""

    def __init__(self, env_fn, n_envs, on_replaced=None):
        super().__init__(n_envs, on_replaced)
        self.env_fn, self.hosts, self.answers, self.dying, self.started = env_fn, [None] * n_envs, {}, set(), []
        self.start_hosts()

    def start(self, i):
        self.hosts[i] = vtopt.EnvHost(self.env_fn())
        self.started.append(i)

    def send(self, i, command, data=None):
        if i in self.dying:
            self.dying.discard(i)
            raise vtopt.HostLost(f"host {i} killed")
        self.answers[i] = self.hosts[i].handle(command, data)

    def receive(self, i):
        return self.answers.pop(i)

    def close(self):
        self.hosts = []


@pytest.fixture
def make_env(vtopt_pm, vtopt_images):
    pm = vtopt_pm()
    scorer = build_scorer(pm, default_config(pm))
    return lambda: VTracerEnv(vtopt_images, scorer, conversions=3)


def test_steps_stack_and_a_dead_host_is_replaced_with_its_settings(make_env):
    replaced = []
    env = InProcess(make_env, 2, on_replaced=lambda slot, reason: replaced.append((slot, reason)))
    env.seed(7)
    obs = env.reset()
    assert obs.shape == (2, *env.observation_space.shape) and env.get_attr("conversions") == [3, 3]
    env.env_method("set_kind_weights", {"text": 1.0})
    actions = np.zeros((2, *env.action_space.shape), dtype=np.float32)
    obs, rewards, dones, infos = env.step(actions)
    assert obs.shape == (2, *env.observation_space.shape) and rewards.shape == dones.shape == (2,)
    env.dying.add(1)
    obs, rewards, dones, infos = env.step(actions)  # slot 1's episode in flight is dropped: reported done
    assert dones[1] and infos[1]["vtopt_worker_replaced"] == "host 1 killed" and "vtopt_episode" not in infos[1]
    assert replaced == [(1, "host 1 killed")] and env.started == [0, 1, 1]
    assert env.hosts[1].env._weights == {"text": 1.0}  # the settings given to every env, given again
    env.dying.add(0)
    env.env_method("set_kind_weights", {"simple": 1.0})  # replaced outside a step: its next step ends the episode
    _, _, dones, infos = env.step(actions)
    assert dones[0] and "vtopt_worker_replaced" in infos[0] and env.hosts[0].env._weights == {"simple": 1.0}


def test_a_slot_that_keeps_dying_stops_the_run(make_env):
    env = InProcess(make_env, 1)
    env.reset()
    actions = np.zeros((1, *env.action_space.shape), dtype=np.float32)
    env.send = lambda i, command, data=None: (_ for _ in ()).throw(vtopt.HostLost("gone again"))
    with pytest.raises(vtopt.VtoptError, match="environment worker 0 died 3 times in a row"):
        env.step(actions)


def test_observations_are_stacked_as_the_env_makes_them():
    a, b = np.zeros(3, np.float32), np.ones(3, np.float32)
    assert stack_obs([a, b]).shape == (2, 3)
    stacked = stack_obs([{"x": a, "n": np.int64(1)}, {"x": b, "n": np.int64(2)}])
    assert stacked["x"].shape == (2, 3) and stacked["n"].tolist() == [1, 2]
    first, second = stack_obs([(a, 1), (b, 2)])
    assert first.shape == (2, 3) and second.tolist() == [1, 2]
