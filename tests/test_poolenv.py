"""The pool environment (``env.actions: pool``): picks, refinement moves, replay of labels."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from conftest import REPO, TINY_RUN, write_config

from vtopt import MOVES, PoolEnv, label, make_pool
from vtopt.config.checks import load_config
from vtopt.env.poolenv import config_pool, move, pool_observation_size
from vtopt.env.scoring import make_scorer
from vtopt.vtracer.params import DEFAULT_PARAMS, SPACE, check_params


@pytest.fixture(scope="module")
def labelled(vtopt_images, tmp_path_factory):
    """Two tiny images, a pool of 5 and their labels, made in a labelling process into a tmp cache."""
    from vtopt.plugin.manager import PluginManager

    images = vtopt_images[::3][:2]
    scorer = make_scorer(PluginManager())
    pool = make_pool(5, seed=0)
    return images, pool, label(images, scorer, pool, tmp_path_factory.mktemp("labels"), workers=1)


def _counting(scorer):
    calls = []
    real = scorer.evaluate

    def evaluate(image, params, keep_svg=False):
        calls.append(dict(params))
        return real(image, params, keep_svg=keep_svg)

    scorer.evaluate = evaluate
    return calls


def test_a_replayed_pick_is_exactly_the_real_conversion(vtopt_pm, labelled):
    pm = vtopt_pm()
    images, pool, labels = labelled
    scorer = make_scorer(pm)
    calls = _counting(scorer)
    env = PoolEnv(images, scorer, 2, pool, labels)
    fresh = make_scorer(pm)  # converts each set here, for real, to compare with
    for i, image in enumerate(images):
        default = fresh.defaults(image).score
        for j, params in enumerate(pool):
            _, start = env.reset(options={"image": i})
            assert start["expert_action"] == int(np.argmax(labels.scores[i]))  # the best label, for imitation
            _, reward, done, _, info = env.step(j)
            assert info["expert_action"] != j  # what was tried is never the expert's next pick
            real = fresh.evaluate(image, params).score
            assert info["score"] == pytest.approx(real, abs=1e-6) and env.last_replayed
            assert reward == pytest.approx(max(0.0, real - default), abs=1e-6)
            assert done and info["vtopt_episode"]["improvement"] == pytest.approx(reward)
    assert calls == []  # every pick was a lookup: no conversion at all, the defaults' included
    # a refinement move converts for real, once per image and set
    env.reset(options={"image": 0})
    env.step(len(pool))  # layer_difference x1.5 from the defaults
    assert calls == [move(DEFAULT_PARAMS, MOVES[0])] and not env.last_replayed
    env.reset(options={"image": 0})
    env.step(len(pool))
    assert len(calls) == 1


def test_the_return_is_the_best_score_over_the_defaults_and_repeats_earn_nothing(vtopt_pm, vtopt_images):
    pm = vtopt_pm()
    pool = make_pool(4, seed=1)
    env = PoolEnv(vtopt_images[:3], make_scorer(pm), 6, pool)
    rng = np.random.default_rng(0)
    for episode in range(3):
        obs, _ = env.reset(seed=episode)
        assert env.observation_space.contains(obs) and not obs[-len(pool):].any()
        total, done, scores, rewards = 0.0, False, [], []
        actions = [int(rng.integers(env.action_space.n)) for _ in range(2)] + [0]
        for a in actions + actions[:2]:  # the first two again (moves from the same best, or not)
            obs, reward, done, _, info = env.step(a)
            assert env.observation_space.contains(obs)
            total += reward
            scores.append(info["score"])
            rewards.append(reward)
        summary = info["vtopt_episode"]
        assert done and summary["failures"] == 0
        assert total == pytest.approx(summary["improvement"])
        assert summary["score"] == pytest.approx(max([summary["default_score"], *scores]))
        assert rewards[3] == 0.0 or actions[0] >= len(pool)  # a candidate picked again earns nothing
        tried = {a for a in actions if a < len(pool)}
        assert set(np.flatnonzero(obs[-len(pool):]).tolist()) >= tried


def test_moves_change_one_parameter_and_stay_in_the_box():
    dims = {d.name: d for d in SPACE}
    corners = [DEFAULT_PARAMS, check_params({d.name: d.choices[0] if d.choices else d.low for d in SPACE}),
               check_params({d.name: d.choices[-1] if d.choices else d.high for d in SPACE})]
    moved_somewhere = set()
    for params in corners:
        for m in MOVES:
            out = check_params(move(params, m))  # raises if it left the box
            changed = [k for k in out if out[k] != params[k]]
            assert changed in ([], [m[0]])
            if changed:
                moved_somewhere.add(m)
                if not dims[m[0]].choices:  # in the move's direction
                    up = m[1] == "*" or (m[1] == "+" and m[2] > 0)
                    assert (out[m[0]] > params[m[0]]) == up
    assert moved_somewhere == set(MOVES)


def test_gym_make_gives_a_discrete_space(vtopt_images, tmp_path):
    env = gym.make("vtopt/VTracer-v0", images=vtopt_images[:2], actions="pool", pool=6, conversions=3)
    assert isinstance(env.action_space, gym.spaces.Discrete) and env.action_space.n == 6 + len(MOVES)
    assert env.unwrapped.labels is None  # no label cache given: every set converts
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    obs, reward, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and reward >= 0.0
    sets = make_pool(3, seed=2)
    replay = gym.make("vtopt/VTracer-v0", images=vtopt_images[:2], actions="pool", pool=sets, labels=str(tmp_path),
                      workers=1)
    assert replay.unwrapped.pool == sets and replay.unwrapped.labels.scores.shape == (2, 3)
    replay.reset(seed=0)
    replay.step(1)
    assert replay.unwrapped.last_replayed and list(tmp_path.glob("labels-*.npz"))
    with pytest.raises(ValueError, match="actions must be"):
        gym.make("vtopt/VTracer-v0", images=vtopt_images[:1], actions="grid")


def test_the_portfolio_configs_pool_is_expressible(tmp_path):
    """env.pool with the portfolio config's pool params gives exactly the candidates it labels."""
    import yaml

    params = yaml.safe_load((REPO / "configs" / "portfolio.yaml").read_text())["algorithm"]["params"]
    pool_yaml = yaml.safe_dump({"size": params["pool"], "seed": params["seed"], "extra": params["extra"],
                                "labels": str(tmp_path)}, default_flow_style=True)
    env = f"env: {{conversions_per_episode: 3, actions: pool, pool: {pool_yaml.strip()}}}"
    cfg = write_config(tmp_path, TINY_RUN.replace("env: {conversions_per_episode: 3, parallel_envs: 1}", env))
    pool = config_pool(load_config(cfg).config)
    assert pool == make_pool(params["pool"], params["seed"], params["extra"]) and len(pool) == params["pool"] == 49


def test_replay_and_the_label_cache_take_effect(vtopt_pm, tmp_path, vtopt_images):
    pm = vtopt_pm()
    from vtopt import make_pool_env

    base = TINY_RUN.replace("env: {conversions_per_episode: 3, parallel_envs: 1}",
                            "env: {conversions_per_episode: 3, actions: pool, pool: {size: 3, labels: %s, workers: 1, "
                            "replay: %s, moves: %s}}")
    scorer = make_scorer(pm)
    off = load_config(write_config(tmp_path, base % (tmp_path / "off", "false", "false"), "off.yaml")).config
    env = make_pool_env(off, vtopt_images[:2], scorer)
    assert env.labels is None and not (tmp_path / "off").exists()
    assert env.action_space.n == 3  # picks only
    on = load_config(write_config(tmp_path, base % (tmp_path / "on", "true", "true"), "on.yaml")).config
    env = make_pool_env(on, vtopt_images[:2], scorer)
    assert env.labels.scores.shape == (2, 3) and list((tmp_path / "on").glob("labels-*.npz"))
    assert env.action_space.n == 3 + len(MOVES)


def test_a_pool_run_trains_on_replayed_labels_and_its_model_optimizes(vtopt_pm, tmp_path):
    pm = vtopt_pm()
    from vtopt import Method, run_images
    from vtopt.apply.model import read_meta
    from vtopt.training.run import train

    labels = tmp_path / "labels"
    text = TINY_RUN.replace("env: {conversions_per_episode: 3, parallel_envs: 1}",
                            f"env: {{conversions_per_episode: 3, actions: pool, pool: {{size: 6, labels: {labels}, "
                            "workers: 1}}")
    loaded = load_config(write_config(tmp_path, text), pm=pm)
    summary = train(loaded, tmp_path / "run", pm)
    assert summary["total_timesteps"] >= 96 and list(labels.glob("labels-*.npz"))
    meta = read_meta(tmp_path / "run" / "model.zip")
    assert meta["env"]["pool"] == make_pool(6, 0) and meta["action_size"] == 6 + len(MOVES)
    # the policy predicts without torch: the argmax of its logits, as SB3's deterministic predict
    from vtopt.apply.model import load_model

    fitted, _ = load_model(pm, tmp_path / "run" / "model.zip")
    assert fitted.net is not None and fitted.net["ops"].tolist()[-1] == "argmax"
    obs = np.random.default_rng(0).uniform(-1, 1, (64, meta["observation_size"])).astype(np.float32)
    expected, _ = fitted.model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(fitted.predict(obs), expected)
    fitted.model = None  # back to numpy only
    assert 0 <= int(fitted.predict(obs[0])) < meta["action_size"]
    image = REPO / "tests" / "data" / "icons" / "crown.png"
    rows = run_images([image], [None], [Method("ppo", 3, model=str(tmp_path / "run" / "model.zip"))],
                      meta["reward_weights"], workers=1)
    assert rows[0]["error"] is None and rows[0]["conversions"] >= 1
    assert rows[0]["score"] >= rows[0]["default_score"]


def test_an_advised_pool_env_observes_the_chooser_and_its_policy_acts_with_that_advice(vtopt_pm, tmp_path, capsys):
    """PPO on a chooser's advice (env.pool.advisor): the observation carries the chooser's predicted gains and
    its pick, imitation imitates that pick, and the trained model optimizes with the same advisor."""
    pm = vtopt_pm()
    from vtopt import Method, run_images
    from vtopt.apply.model import load_model, read_meta
    from vtopt.training.run import train

    labels = tmp_path / "labels"
    chooser_run = TINY_RUN.replace(
        "algorithm: {name: ppo, params: {n_steps: 32, batch_size: 32, n_epochs: 1}}",
        f"algorithm: {{name: chooser, params: {{pool: 6, labels: {labels}, workers: 1, hidden: 8, rounds: 1, "
        "epochs: 2, steps: 2}}")
    train(load_config(write_config(tmp_path, chooser_run), pm=pm), tmp_path / "chooser", pm)
    advisor_file = tmp_path / "chooser" / "model.zip"
    text = TINY_RUN.replace(
        "env: {conversions_per_episode: 3, parallel_envs: 1}",
        f"env: {{conversions_per_episode: 3, actions: pool, pool: {{size: 6, labels: {labels}, workers: 1, "
        f"advisor: {advisor_file}}}}}").replace("n_epochs: 1}", "n_epochs: 1, imitate: 64}")
    loaded = load_config(write_config(tmp_path, text, "ppo.yaml"), pm=pm)
    train(loaded, tmp_path / "ppo", pm)
    meta = read_meta(tmp_path / "ppo" / "model.zip")
    assert meta["env"]["advisor"] == str(advisor_file.resolve())
    assert meta["observation_size"] == pool_observation_size(6, advised=True) == pool_observation_size(6) + 12

    # the env: advice in the observation, the advisor's pick as the expert
    chooser, _ = load_model(pm, advisor_file)
    from vtopt.env.data import load_dataset
    from vtopt.env.scoring import build_scorer

    scorer = build_scorer(pm, loaded.config)
    images = load_dataset(loaded, scorer).train[:3]
    env = PoolEnv(images, scorer, 3, make_pool(6, 0), advisor=chooser)
    assert env.observation_space.shape == (meta["observation_size"],)
    twin, _ = load_model(pm, advisor_file)  # the same chooser, stepped as optimize steps it
    for i, image in enumerate(images):
        obs, info = env.reset(options={"image": i})
        twin.start_image(image, default=scorer.defaults(image))
        for _ in range(2):
            pick = env.pool.index(twin.predict(None))
            assert info["expert_action"] == pick and obs[-6:].tolist() == [float(j == pick) for j in range(6)]
            gains = obs[-12:-6]
            assert np.all(gains >= -1) and np.all(gains <= 1) and gains[pick] > -1
            obs, _, done, _, info = env.step(pick)
            twin.observe(env.pool[pick], info["score"], env.last)
            if done:
                break
    with pytest.raises(ValueError, match="pool"):
        PoolEnv(images, scorer, 3, make_pool(7, 0), advisor=chooser)
    # a refinement is no step of the chooser's: after a move the advice is still what the chooser would pick
    env.reset(options={"image": 0})
    twin.start_image(images[0], default=scorer.defaults(images[0]))
    _, _, _, _, info = env.step(len(env.pool))  # a move, converted for real
    twin.observe(env.last.params, info["score"], env.last)
    assert info["expert_action"] == env.pool.index(twin.predict(None))
    # two envs on one advisor do not share its episode state
    other = PoolEnv(images, scorer, 3, make_pool(6, 0), advisor=chooser)
    obs, info = env.reset(options={"image": 1})
    other.reset(options={"image": 2})
    other.step(0)
    assert env._observation().tolist() == obs.tolist()

    rows = run_images([REPO / "tests" / "data" / "icons" / "crown.png"], [None],
                      [Method("ppo", 3, model=str(tmp_path / "ppo" / "model.zip"))], meta["reward_weights"], workers=1)
    assert rows[0]["error"] is None and rows[0]["conversions"] >= 1
    # a changed advisor is refused, in one line that says what to do
    import zipfile

    from vtopt.cli import main

    with zipfile.ZipFile(advisor_file, "a") as zf:
        zf.writestr("note.txt", "refitted")
    assert main(["-q", "evaluate", str(REPO / "tests" / "data" / "icons"), "--methods",
                 f"mine={tmp_path / 'ppo' / 'model.zip'}", "--workers", "1"]) == 1
    assert "is not the one it was trained with" in capsys.readouterr().err
    # validate checks the advisor: a missing file, or a chooser of another pool, is one line naming the config
    for advisor, says in ((tmp_path / "nosuch.zip", "neither a shipped model nor a model file"),
                          (advisor_file, None)):
        bad = write_config(tmp_path, text.replace(str(advisor_file), str(advisor)).replace("size: 6", "size: 7"),
                           "bad.yaml")
        assert main(["validate", str(bad)]) == 1
        err = capsys.readouterr().err.strip()
        assert str(bad) in err and (says or "its pool (6 sets) is not env.pool's (7 sets") in err and "\n" not in err
