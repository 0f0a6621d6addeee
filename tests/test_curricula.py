"""The staged curriculum advances on mastery: catching up with the reference on a kind."""

from __future__ import annotations

import pytest

from vtopt.env.gymenv import VTracerEnv
from vtopt.env.scoring import make_scorer
from vtopt.vtracer.params import check_params


def test_staged_advances_when_the_policy_catches_up_with_the_reference(vtopt_pm):
    pm = vtopt_pm()
    staged = pm.create("curriculum", "staged", {"window": 3, "max_timesteps": 10_000})
    staged.start(["simple", "text"])
    for t in range(10):  # better than the defaults, but behind the reference: not mastered
        staged.record("simple", 0.02, t, reference=0.03)
    assert staged.stage() == "simple"
    for t in range(10, 13):
        staged.record("simple", 0.035, t, reference=0.03)
    assert staged.stage() == "text"


def test_staged_still_moves_on_after_max_timesteps(vtopt_pm):
    pm = vtopt_pm()
    staged = pm.create("curriculum", "staged", {"window": 3, "max_timesteps": 100})
    staged.start(["simple", "text"])
    staged.record("simple", 0.0, 50, reference=0.05)
    assert staged.stage() == "simple"
    staged.record("simple", 0.0, 100, reference=0.05)
    assert staged.stage() == "text"


def test_episodes_report_the_reference_improvement(vtopt_pm, vtopt_images):
    pm = vtopt_pm()
    scorer = make_scorer(pm, {"ssim_rgb": 1.0, "size": -0.02})
    sets = [check_params({"mode": "polygon"}), check_params({"mode": "polygon", "path_precision": 0})]
    env = VTracerEnv(vtopt_images, scorer, 3, reference=sets)
    env.reset(options={"image": 5})
    env.step(env.action_space.sample())
    _, _, done, _, info = env.step(env.action_space.sample())
    assert done
    episode = info["vtopt_episode"]
    default = scorer.defaults(vtopt_images[5]).score
    best_ref = max(default, *(scorer.evaluate(vtopt_images[5], p).score for p in sets))
    assert episode["reference_improvement"] == pytest.approx(best_ref - default)
    env_without = VTracerEnv(vtopt_images, scorer, 2)
    env_without.reset(options={"image": 5})
    assert "reference_improvement" not in env_without.episode_summary()


def test_a_checkpoint_from_before_reference_mastery_does_not_advance_a_stage(vtopt_pm):
    pm = vtopt_pm()
    staged = pm.create("curriculum", "staged", {"window": 2, "max_timesteps": 10_000})
    staged.start(["simple", "text"])
    # saved by the previous version: bare improvements, which would pass a test against the reference
    staged.load_state_dict({"stages": ["simple", "text"], "index": 0, "stage_start": 0, "recent": [0.05, 0.05]})
    staged.record("simple", 0.01, 10, reference=0.03)
    assert staged.stage() == "simple"
    state = staged.state_dict()
    again = pm.create("curriculum", "staged", {"window": 2, "max_timesteps": 10_000})
    again.start(["simple", "text"])
    again.load_state_dict(state)
    again.record("simple", 0.04, 11, reference=0.03)
    assert again.stage() == "simple"  # mean(-0.02, +0.01) < 0
    again.record("simple", 0.06, 12, reference=0.03)
    assert again.stage() == "text"
