"""The candidate pool, its labels, the greedy portfolio and the learned chooser."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import REPO, write_config
from vtopt_portfolio import chooser as C

from vtopt.apply.model import load_model, read_meta
from vtopt.cli import main
from vtopt.env.diagnose import DIAGNOSTICS
from vtopt.env.gymenv import VTracerEnv
from vtopt.env.labels import PRESET_SETS, label, make_pool
from vtopt.env.scoring import make_scorer
from vtopt.vtracer.images import load_image
from vtopt.vtracer.params import DEFAULT_PARAMS, check_params

CORPUS = REPO / "tests" / "data" / "corpus"


def test_pool_is_distinct_valid_and_starts_with_the_presets():
    pool = make_pool(20, seed=3, extra=[{"mode": "polygon", "path_precision": 1}])
    keys = {json.dumps(p, sort_keys=True) for p in pool}
    assert len(pool) == 20 and len(keys) == 20
    assert check_params(DEFAULT_PARAMS) not in pool  # the defaults are always tried anyway
    assert pool[: len(PRESET_SETS)] == [check_params(p) for p in PRESET_SETS]
    assert pool[len(PRESET_SETS)] == check_params({"mode": "polygon", "path_precision": 1})
    assert all(check_params(p) == p for p in pool)
    assert make_pool(20, seed=3) == make_pool(20, seed=3) != make_pool(20, seed=4)


def test_greedy_portfolio_picks_complementary_sets():
    # candidate 0 is good on average; 1 and 2 are each excellent on half the images
    scores = np.array([[0.75, 0.9, 0.1], [0.75, 0.9, 0.1], [0.75, 0.1, 0.9], [0.75, 0.1, 0.9]])
    default = np.full(4, 0.5)
    assert C.greedy_portfolio(scores, default, 1) == [0]
    assert C.greedy_portfolio(scores, default, 2) == [0, 1]
    order = np.tile(np.array([1, 2, 0]), (4, 1))
    assert C.best_of(scores, default, order, 1) == pytest.approx((0.9 + 0.9 + 0.5 + 0.5) / 4)
    assert C.best_of(scores, default, order, 2) == pytest.approx(0.9)


def _three_kinds(n, rng):
    """Images of three kinds, told apart by a feature; each kind has its own best candidate."""
    kind = rng.integers(0, 3, n)
    heads = np.zeros((n, 16), np.float32)
    heads[:, 0] = kind / 2
    heads[:, 1:] = rng.random((n, 15)) * 0.1
    scores = np.full((n, 6), 0.50) + rng.random((n, 6)) * 0.002
    scores[:, 0] = 0.52  # good for everyone
    for k in range(3):
        scores[kind == k, 1 + k] = 0.56
    return heads, scores, np.full(n, 0.5)


def test_chooser_learns_what_a_fixed_portfolio_cannot():
    rng = np.random.default_rng(0)
    heads, scores, default = _three_kinds(300, rng)
    sigs = C.signals(scores, scores, np.full(scores.shape, 1000.0), default, default, np.full(300, 1000.0))
    policy, report = C.fit(heads, sigs, scores, default, steps=3, hidden=32, rounds=2, epochs=40, random_orders=2,
                           seed=0)
    assert report["margins"][0] is not None  # the held-out images chose the network over the portfolio
    net = policy.net
    test_heads, test_scores, test_default = _three_kinds(200, rng)
    fixed = C.greedy_portfolio(scores, default, 3)
    for picks in (1, 2):
        portfolio = C.best_of(test_scores, test_default, np.tile(np.array(fixed), (200, 1)), picks)
        test_sigs = C.signals(test_scores, test_scores, np.full(test_scores.shape, 1000.0), test_default,
                              test_default, np.full(200, 1000.0))
        orders = C.policy_orders(policy, test_heads, test_sigs, test_scores, test_default, 3)
        learned = C.best_of(test_scores, test_default, orders, picks)
        assert learned > portfolio + 0.01, (picks, learned, portfolio)
    # numpy inference is the torch network's
    import torch

    layers = [torch.nn.Linear(w.shape[0], w.shape[1]) for w, _ in net.layers]
    with torch.no_grad():
        for layer, (w, b) in zip(layers, net.layers):
            layer.weight.copy_(torch.from_numpy(w.T))
            layer.bias.copy_(torch.from_numpy(b))
        x = torch.from_numpy(C.encode(heads[0], np.ones(6), sigs[0], 0.01, 2)[None])
        ref = layers[2](torch.relu(layers[1](torch.relu(layers[0](x))))).numpy()
    np.testing.assert_allclose(net.forward(x.numpy()), ref, atol=1e-6)


def test_quality_floor_keeps_collapsed_results_from_winning(vtopt_pm):
    pm = vtopt_pm()
    image = load_image(CORPUS / "noto" / "ant.png", "x")
    # on this icon: 0.049 below the defaults' SSIM, but so few bytes that it would beat them by 0.008
    crude = check_params({"color_precision": 3, "filter_speckle": 8, "layer_difference": 32, "mode": "polygon",
                          "path_precision": 0})
    loose = make_scorer(pm, {"ssim_rgb": 1.0, "size": -0.02}, max_ssim_loss=1.0).evaluate(image, crude)
    strict_scorer = make_scorer(pm, {"ssim_rgb": 1.0, "size": -0.02}, max_ssim_loss=0.005)
    default = strict_scorer.defaults(image)
    strict = strict_scorer.evaluate(image, crude)
    loss = default.ssim - strict.ssim
    assert loss > 0.005, "the crude setting must lose SSIM for this test to mean anything"
    assert loose.score > default.score  # without the floor, far fewer bytes win
    assert strict.score < default.score and strict.floor_excess == pytest.approx(loss - 0.005)
    env = VTracerEnv([image], strict_scorer, 3)
    env.reset(options={"image": 0})
    _, reward, *_ = env.apply(crude)
    assert reward == 0.0 and env.best is env.default


def test_labels_are_cached_by_image_content_and_candidate(vtopt_pm, tmp_path, monkeypatch):
    pm = vtopt_pm()
    from structlog.testing import capture_logs

    from vtopt.env import labels as L

    images = [load_image(p, "x") for p in sorted((CORPUS / "twemoji").glob("*.png"))[:2]]
    scorer = make_scorer(pm, {"ssim_rgb": 1.0, "size": -0.02})
    pool = make_pool(5, seed=0)
    monkeypatch.setattr(L, "PROGRESS_SECONDS", 0.0)  # a progress line per image
    with capture_logs() as logs:
        first = label(images, scorer, pool[:3], tmp_path, workers=1)
    assert first.scores.shape == (2, 3) and np.all(first.scores > 0)
    progress = [e for e in logs if e["event"] == "labelled"]
    assert [(e["conversions"], e["images"]) for e in progress] == [("3/6", "1/2"), ("6/6", "2/2")]
    assert progress[-1]["left"] == "0s" and all(e["per_s"] > 0 for e in progress)
    assert (L._duration(3725), L._duration(185), L._duration(4.4)) == ("1h02m", "3m05s", "4s")
    direct = [scorer.evaluate(images[1], p).score for p in pool[:3]]
    np.testing.assert_allclose(first.scores[1], direct, atol=1e-6)
    (cache,) = tmp_path.glob("labels-*.npz")
    stamp = cache.stat().st_mtime_ns
    again = label(images[::-1], scorer, pool[:3], tmp_path, workers=1)  # nothing to convert: no save either
    np.testing.assert_array_equal(again.table, first.table[::-1])
    assert cache.stat().st_mtime_ns == stamp
    # a larger pool converts only its new candidates: a (doctored) cached label is read back, not redone
    with np.load(cache) as saved:
        data = {k: saved[k] for k in saved.files}
    data["cells"][:, :, 0] = np.where(np.isnan(data["cells"][:, :, 0]), np.nan, 7.0)
    np.savez(cache, **data)
    grown = label(images, scorer, pool, tmp_path, workers=1)
    assert np.all(grown.scores[:, :3] == 7.0)
    np.testing.assert_allclose(grown.scores[1, 3:], [scorer.evaluate(images[1], p).score for p in pool[3:]],
                               atol=1e-6)
    # another reward is another cache
    label(images[:1], make_scorer(pm, {"ssim_rgb": 1.0, "size": -0.05}), pool[:1], tmp_path, workers=1)
    assert len(list(tmp_path.glob("labels-*.npz"))) == 2


RUN = """\
run: {{name: {name}, seed: 0, timesteps: 1}}
data:
  synthetic: null
  folders: [{{path: {corpus}}}]
  validation_split: 0.34
  image_size: 64
env: {{conversions_per_episode: 3, parallel_envs: 1}}
algorithm:
  name: {name}
  params: {{pool: 6, seed: 0, labels: {labels}, workers: 1{extra}}}
curriculum: {{name: uniform}}
monitors: [{{name: structlog, params: {{console: false}}}}]
"""


def test_portfolio_and_chooser_train_save_and_evaluate(tmp_path, capsys):
    labels = tmp_path / "labels"
    for name, extra in (("portfolio", ", size: 3"), ("chooser", ", hidden: 16, rounds: 2, epochs: 5, steps: 3")):
        cfg = write_config(tmp_path, RUN.format(name=name, corpus=CORPUS, labels=labels, extra=extra), f"{name}.yaml")
        assert main(["-q", "run", str(cfg), "--out", str(tmp_path / name)]) == 0
    summary = json.loads((tmp_path / "portfolio" / "summary.json").read_text())
    assert summary["images"]["train"] == 6 and summary["evaluation"]["images"] == 3
    portfolio, meta = load_model(__import__("vtopt").PluginManager(), tmp_path / "portfolio" / "model.zip")
    assert meta["algorithm"] == "portfolio" and len(portfolio.sets) == 3 and len(portfolio.pool) == 6
    assert read_meta(tmp_path / "chooser" / "model.zip")["max_ssim_loss"] == 0.005
    capsys.readouterr()
    report = tmp_path / "rows.json"
    assert main(["evaluate", str(CORPUS / "noto"), "--budget", "3", "--portfolio-model",
                 str(tmp_path / "portfolio" / "model.zip"), "--report", str(report),
                 "--methods", f"chooser={tmp_path / 'chooser' / 'model.zip'},portfolio,oracle,defaults"]) == 0
    out = capsys.readouterr().out
    assert "worst dSSIM" in out and "upper reference" in out
    rows = json.loads(report.read_text())
    by = {(r["method"], r["input"]): r for r in rows}
    for (method, _), r in by.items():
        assert r["error"] is None
        assert r["conversions"] == {"oracle": 7, "defaults": 1}.get(method, 3)
        assert r["default_ssim"] - r["ssim"] <= 0.005 + 1e-9  # the floor holds for every method
    chosen = [r["parameters"] for r in rows if r["method"] == "chooser" and r["score"] > r["default_score"]]
    assert chosen and all(p in portfolio.pool for p in chosen)


def test_chooser_acts_as_it_was_trained(tmp_path, vtopt_pm):
    """The chooser stepping real conversions (start_image/observe/predict, numpy) picks what its
    training rollouts (labels, batched) pick for the same images."""
    pm = vtopt_pm()
    cfg = write_config(tmp_path, RUN.format(name="chooser", corpus=CORPUS, labels=tmp_path / "labels",
                                            extra=", hidden: 16, rounds: 1, epochs: 5, steps: 4"))
    assert main(["-q", "run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    chooser, _ = load_model(pm, tmp_path / "run" / "model.zip")
    images = [load_image(p, "x", 64) for p in sorted((CORPUS / "noto").glob("*.png"))]
    scorer = make_scorer(pm, {"ssim_rgb": 1.0, "size": -0.02})
    labels = label(images, scorer, chooser.pool, tmp_path / "labels", workers=1)
    heads, sigs = chooser.observations(images, labels)
    assert chooser.diagnostics and sigs.shape == (len(images), len(chooser.pool), 3 + len(DIAGNOSTICS))
    expected = C.policy_orders(chooser.policy, heads, sigs, labels.scores, labels.default_score, 4)
    from vtopt.env.search import search_image

    class Recorder:  # the chooser, as search_image drives it, with its proposals written down
        learn = save = load = chooser.learn  # a vtopt.SearchAlgorithm: never called here

        def start_image(self, image, default=None):
            self.picked = []
            chooser.start_image(image, default=default)

        def observe(self, params, score, outcome=None):
            chooser.observe(params, score, outcome=outcome)

        def predict(self, observation, deterministic=True):
            self.picked.append(chooser.predict(observation))
            return self.picked[-1]

    recorder = Recorder()
    for i, image in enumerate(images):
        search_image(recorder, VTracerEnv([image], scorer, 5), 0)
        assert [chooser.pool.index(p) for p in recorder.picked] == expected[i].tolist()


@pytest.mark.parametrize("name", ["chooser", "portfolio", "ppo", "preset", "debug", "cpu", "default"])
def test_shipped_configs_validate(name, capsys):
    # the corpus configs train on ~/.cache/vtopt/corpus: point them at the test icons
    over = ["--set", f"data.folders=[{{path: {CORPUS}}}]"] if name in ("chooser", "portfolio") else []
    assert main(["validate", str(REPO / "configs" / f"{name}.yaml"), *over]) == 0, capsys.readouterr().err


def test_a_departure_holds_up_only_when_its_gain_beats_its_noise_in_every_family():
    rng = np.random.default_rng(0)
    steady = np.full(60, 0.002) + rng.normal(0, 0.0005, 60)
    one = np.array(["a"] * 60)
    assert C.holds_up(steady, one)
    noisy = np.concatenate([np.full(3, 0.05), np.full(57, -0.002)])  # a mean gain carried by three images
    assert noisy.mean() > 0 and not C.holds_up(noisy, one)
    split = np.array(["a"] * 30 + ["b"] * 30)
    losing_b = np.concatenate([np.full(30, 0.006), np.full(30, -0.001)]) + rng.normal(0, 0.0001, 60)
    assert C.holds_up(losing_b, one) and not C.holds_up(losing_b, split)
    noisy_b = np.concatenate([np.full(30, 0.006), rng.normal(-0.0001, 0.002, 30)])  # b's loss is within its noise
    assert abs(noisy_b[30:].mean()) < 0.002 / np.sqrt(30) and C.holds_up(noisy_b, split)
    few = np.array(["a"] * 50 + ["b"] * 10)  # too few of b to judge b on its own
    assert C.holds_up(np.concatenate([np.full(50, 0.006), np.full(10, -0.001)]), few)
    assert not C.holds_up(np.zeros(60), one) and not C.holds_up(np.array([0.01]), one[:1])


def test_one_conversions_signals_are_the_batched_formulas():
    cases = [(1.01, 0.96, 3000, 0.99, 0.95, 9000), (float("nan"), 0.9, 0, 0.99, 0.95, 9000),
             (2.0, 0.2, 1e9, 0.9, 0.95, 10)]
    for score, ssim, nbytes, ds, dq, db in cases:
        one = C.signals(score, ssim, nbytes, ds, dq, db)
        batched = C.signals(np.array([score]), np.array([ssim]), np.array([nbytes]), np.array(ds), np.array(dq),
                            np.array(db))[0]
        np.testing.assert_allclose(one, batched, atol=1e-6)
    assert C.signals(1.01, 0.96, 3000, 0.99, 0.95, 9000).tolist() != [0.0, 0.0, 0.0]
