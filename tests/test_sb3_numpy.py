"""The SB3 plugin's torch-free inference: the numpy policy saved in model files, against SB3's own predict."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import vtopt_sb3
from stable_baselines3.common.vec_env import DummyVecEnv

from vtopt.apply.model import load_model, save_model
from vtopt.env.gymenv import observation_size
from vtopt.vtracer.params import action_size

CASES = {
    "ppo": ("ppo", {"n_steps": 16, "batch_size": 16, "n_epochs": 1}),
    "ppo-relu": ("ppo", {"n_steps": 16, "batch_size": 16, "n_epochs": 1,
                         "policy_kwargs": {"activation_fn": torch.nn.ReLU, "net_arch": [32, 16]}}),
    "a2c": ("a2c", {"n_steps": 8}),
    "sac": ("sac", {"learning_starts": 0, "batch_size": 16, "buffer_size": 100, "policy_kwargs": {"net_arch": [32]}}),
}


def trained(pm, name: str, params: dict):
    """A tiny SB3 model trained on the plugin's stub env, then shaken a little and given offsets on its last layer
    (so that many PPO/A2C actions fall outside the box and are clipped, and SAC's tanh nears saturation)."""
    algorithm = pm.create("algorithm", name, {})
    cls = vtopt_sb3._sb3_class(algorithm.class_name)
    algorithm.model = cls("MlpPolicy", DummyVecEnv([vtopt_sb3._StubEnv]), seed=0, device="cpu", verbose=0,
                          **{**algorithm.params, **params})
    algorithm.model.learn(16)
    policy = algorithm.model.policy
    last = policy.actor.mu if name == "sac" else policy.action_net
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
        last.bias.add_(3 * torch.rand(last.bias.shape, generator=gen) - 1.5)
    return algorithm


def save(algorithm, path: Path, name: str) -> Path:
    # meta params stay empty: an activation_fn class is no JSON (and a loaded numpy policy needs none)
    return save_model(algorithm, path, name, {}, 4, {"ssim_rgb": 1.0})


def observations(n: int = 256) -> np.ndarray:
    """Mostly inside [-1, 1], as the env clips them; some rows up to 3 times outside."""
    rng = np.random.default_rng(0)
    return (rng.uniform(-1, 1, (n, observation_size())) * rng.choice([1.0, 3.0], (n, 1), p=[0.75, 0.25])).astype(np.float32)


@pytest.mark.parametrize("case", list(CASES))
def test_numpy_predict_matches_sb3(vtopt_pm, tmp_path, case):
    pm = vtopt_pm()
    name, params = CASES[case]
    algorithm = trained(pm, name, params)
    path = save(algorithm, tmp_path / "model.zip", name)
    with zipfile.ZipFile(path) as zf:
        assert {vtopt_sb3.NUMPY_ENTRY, "vtopt.json", "policy.pth"} <= set(zf.namelist())

    loaded, meta = load_model(pm, path)
    assert meta["algorithm"] == name and loaded.net is not None and loaded._model is None

    obs = observations()
    expected, _ = algorithm.model.predict(obs, deterministic=True)
    got = loaded.predict(obs)
    assert got.shape == expected.shape == (len(obs), action_size()) and got.dtype == np.float32
    assert np.max(np.abs(got - expected)) < 1e-6  # float32 rounding: torch and numpy sum in other orders
    assert np.all(np.abs(got) <= 1.0)
    if name != "sac":  # SAC squashes with tanh; PPO/A2C clip the Gaussian's mean onto the box
        assert np.mean(np.abs(expected) == 1.0) > 0.05
    for row in obs[:5]:  # one unbatched observation at a time, as vtopt predicts, float64 as well
        expected_one, _ = algorithm.model.predict(row, deterministic=True)
        for given in (row, row.astype(np.float64)):
            got_one = loaded.predict(given)
            assert got_one.shape == (action_size(),)
            assert np.max(np.abs(got_one - expected_one)) < 1e-6
    assert loaded._model is None  # SB3 was never needed


def test_stochastic_predict_loads_sb3(vtopt_pm, tmp_path):
    pm = vtopt_pm()
    name, params = CASES["ppo"]
    loaded, _ = load_model(pm, save(trained(pm, name, params), tmp_path / "model.zip", name))
    action = loaded.predict(observations(1)[0], deterministic=False)
    assert action.shape == (action_size(),) and loaded._model is not None


def test_loading_and_predicting_imports_no_torch(vtopt_pm, tmp_path):
    pm = vtopt_pm()
    name, params = CASES["ppo"]
    path = save(trained(pm, name, params), tmp_path / "model.zip", name)
    script = (
        "import sys, numpy as np\n"
        "from vtopt.apply.model import load_model\n"
        "from vtopt.plugin.manager import PluginManager\n"
        "algorithm, _ = load_model(PluginManager(), sys.argv[1])\n"
        "action = algorithm.predict(np.ones(algorithm.net['w0'].shape[1], np.float32))\n"
        "assert action.shape == (algorithm.net['low'].size,), action\n"
        "print(sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_model_without_numpy_entry_predicts_through_sb3(vtopt_pm, tmp_path, monkeypatch):
    pm = vtopt_pm()
    name, params = CASES["ppo"]
    algorithm = trained(pm, name, params)
    with monkeypatch.context() as m:  # a model file from before the numpy entry existed
        m.setattr(vtopt_sb3, "numpy_policy", lambda model: None)
        path = save(algorithm, tmp_path / "old.zip", name)
    with zipfile.ZipFile(path) as zf:
        assert vtopt_sb3.NUMPY_ENTRY not in zf.namelist()
    loaded, _ = load_model(pm, path)
    assert loaded.net is None and loaded._model is not None
    obs = observations(32)
    np.testing.assert_array_equal(loaded.predict(obs), algorithm.model.predict(obs, deterministic=True)[0])


def test_unsupported_policy_is_saved_without_numpy_entry(vtopt_pm, tmp_path):
    pm = vtopt_pm()
    algorithm = trained(pm, "ppo", {"n_steps": 16, "batch_size": 16, "n_epochs": 1, "use_sde": True})
    assert vtopt_sb3.numpy_policy(algorithm.model) is None
    path = save(algorithm, tmp_path / "sde.zip", "ppo")
    loaded, _ = load_model(pm, path)
    assert loaded.net is None
    obs = observations(8)
    np.testing.assert_array_equal(loaded.predict(obs), algorithm.model.predict(obs, deterministic=True)[0])
