"""The chooser's network: which candidate of the pool to convert next, given the image and what came back.

The state after some conversions of an image is its features, the defaults'
result, and for each candidate of the pool whether it was tried and how it
scored. The network predicts, for every candidate, the *gain* converting it
would bring: ``max(0, score - best so far)``. Acting is picking the untried
candidate with the largest predicted gain, so the network learns which
settings suit this image and, from earlier results, which are worth trying
next (a candidate like one that just did badly is not).

Training is supervised on labels: every candidate's real score on every
training image (see :func:`vtopt.label`). With all of an image's scores known,
the true gain of every candidate is known in every state, so the states the
network learns from come from its own rollouts (DAgger), from the greedy
portfolio's and from random ones. Applying it is a few numpy matrix
products: no torch at inference.
"""

from __future__ import annotations

import math

import numpy as np
import structlog

from vtopt import DIAGNOSTICS

log = structlog.get_logger(__name__)

GAIN_SCALE = 50.0  # a gain of 0.02 in score reads as 1
SCORE_SCALE = 20.0  # an observed score 0.05 above the defaults' reads as 1
MAX_STEPS = 8.0


def palette_features(rgb: np.ndarray) -> np.ndarray:
    """What decides how an image survives colour quantisation and speckle filtering, each about in [0, 1]:
    how many colours matter, how close the main ones are, how much of it is thin strokes."""
    import cv2

    q = (rgb >> 3).astype(np.int32)
    codes = ((q[..., 0] << 10) | (q[..., 1] << 5) | q[..., 2]).ravel()
    values, counts = np.unique(codes, return_counts=True)
    share = counts / counts.sum()
    main = values[share >= 0.005]
    cols = np.stack([(main >> 10) & 31, (main >> 5) & 31, main & 31], axis=1).astype(np.float32) * 8.0
    if len(cols) > 1:
        cols = cols[:24]
        d = np.sqrt(((cols[:, None] - cols[None]) ** 2).sum(-1))
        closest = float(d[np.triu_indices(len(cols), 1)].min()) / 441.0
    else:
        closest = 1.0
    fg = (rgb.min(axis=2) < 245).astype(np.uint8)
    eroded = cv2.erode(fg, np.ones((3, 3), np.uint8))
    thin = 1.0 - float(eroded.sum()) / max(float(fg.sum()), 1.0)
    return np.array([
        np.log2(1 + (share >= 0.001).sum()) / 8.0,
        np.log2(1 + len(main)) / 6.0,
        min(closest * 4.0, 1.0),
        float(fg.mean()),
        thin,
    ], np.float32)


def image_head(features: np.ndarray, default_ssim: float, default_bytes: float, default_paths: float) -> np.ndarray:
    """What the chooser knows of an image before any conversion of its own (``features``: the
    image's ``features`` and :func:`palette_features`)."""
    return np.concatenate([np.asarray(features, np.float32), np.array([
        default_ssim if math.isfinite(default_ssim) else 0.0,
        math.log2(max(default_bytes, 1.0)) / 24.0,
        math.log2(default_paths + 1.0) / 16.0,
    ], np.float32)])


def signals(score, ssim, nbytes, default_score, default_ssim, default_bytes) -> np.ndarray:
    """What a conversion tells of an image, relative to the defaults: (..., 3) for score, SSIM, log2 bytes."""
    if np.ndim(score) == 0:  # one conversion (a chooser stepping): plain floats, a hundred times cheaper
        out = [(score - default_score) * SCORE_SCALE, (ssim - default_ssim) * SCORE_SCALE,
               math.log2(max(nbytes, 1.0) / max(default_bytes, 1.0)) / 4.0]
        return np.array([-1.0 if math.isnan(v) else min(max(v, -1.0), 1.0) for v in out], np.float32)
    score, ssim, nbytes = np.asarray(score, np.float64), np.asarray(ssim, np.float64), np.asarray(nbytes, np.float64)
    ds = np.asarray(default_score, np.float64)[..., None] if np.ndim(score) > np.ndim(default_score) else default_score
    dq = np.asarray(default_ssim, np.float64)[..., None] if np.ndim(ssim) > np.ndim(default_ssim) else default_ssim
    db = np.asarray(default_bytes, np.float64)[..., None] if np.ndim(nbytes) > np.ndim(default_bytes) else default_bytes
    out = np.stack([(score - ds) * SCORE_SCALE, (ssim - dq) * SCORE_SCALE,
                    np.log2(np.maximum(nbytes, 1.0) / np.maximum(db, 1.0)) / 4.0], axis=-1)
    return np.clip(np.nan_to_num(out, nan=-1.0), -1.0, 1.0).astype(np.float32)


#: Scales of the diagnostics (vtopt.DIAGNOSTICS: edge, flat and fill-colour error, parts lost and added,
#: strokes broken): the defaults' own values in the head, a candidate's change from them in its signals.
DIAGNOSTIC_HEAD_SCALE = np.array([10.0, 50.0, 20.0, 2.0, 2.0, 2.0], np.float32)
DIAGNOSTIC_SIGNAL_SCALE = np.array([50.0, 100.0, 20.0, 2.0, 2.0, 2.0], np.float32)


assert len(DIAGNOSTIC_HEAD_SCALE) == len(DIAGNOSTIC_SIGNAL_SCALE) == len(DIAGNOSTICS), "a scale per diagnostic"


def diagnostic_head(default_diagnostics) -> np.ndarray:
    """Where the defaults' conversion went wrong, for the image's head."""
    return np.clip(np.asarray(default_diagnostics, np.float32) * DIAGNOSTIC_HEAD_SCALE, 0.0, 1.0)


def diagnostic_signals(diagnostics, default_diagnostics) -> np.ndarray:
    """Where a conversion differs from the image, relative to the defaults: (..., 6) in [-1, 1]
    (``default_diagnostics`` broadcast over the candidates' axis)."""
    diagnostics = np.asarray(diagnostics, np.float32)
    default = np.asarray(default_diagnostics, np.float32)
    if default.ndim < diagnostics.ndim:
        default = np.expand_dims(default, -2)
    return np.clip((diagnostics - default) * DIAGNOSTIC_SIGNAL_SCALE, -1.0, 1.0).astype(np.float32)


def encode(head: np.ndarray, tried: np.ndarray, sig: np.ndarray, best_gain: float, steps: int) -> np.ndarray:
    """One state: ``tried`` a 0/1 mask over the pool, ``sig`` (pool, S) the tried candidates' :func:`signals`
    (with their :func:`diagnostic_signals` when the chooser observes them)."""
    return np.concatenate([head, tried.astype(np.float32), (sig * tried[:, None]).ravel(),
                           [min(best_gain * SCORE_SCALE, 1.0), steps / MAX_STEPS]]).astype(np.float32)


class Net:
    """An MLP as plain arrays: ``forward`` in numpy, ``fit`` with torch."""

    def __init__(self, layers: list[tuple[np.ndarray, np.ndarray]]):
        self.layers = layers

    def forward(self, x: np.ndarray) -> np.ndarray:
        h = np.asarray(x, np.float32)
        for i, (w, b) in enumerate(self.layers):
            h = h @ w + b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return h

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for i, (w, b) in enumerate(self.layers):
            out[f"w{i}"], out[f"b{i}"] = w, b
        return out

    @classmethod
    def from_arrays(cls, arrays) -> Net:
        n = len([k for k in arrays if k.startswith("w")])
        return cls([(np.asarray(arrays[f"w{i}"], np.float32), np.asarray(arrays[f"b{i}"], np.float32))
                    for i in range(n)])


class Policy:
    """The network, plus the greedy portfolio it departs from only when it predicts enough more gain.

    In each state the portfolio's next untried set is the default pick; the
    network's own pick replaces it when its predicted gain is larger by more
    than the step's margin (``margins[step]``, the last one for later steps;
    in units of ``GAIN_SCALE``). The margins are chosen on held-out labelled
    images: where the network predicts no better than the portfolio, an
    infinite margin makes that step the portfolio's.
    """

    def __init__(self, net: Net, portfolio: list[int], margins: list[float]):
        self.net, self.portfolio, self.margins = net, list(portfolio), [float(m) for m in margins]

    def picks(self, states: np.ndarray, tried: np.ndarray, step: int) -> np.ndarray:
        """One pick per row of ``states`` (batched), never a tried candidate."""
        return self.picks_from(self.net.forward(states), tried, step)

    def picks_from(self, q: np.ndarray, tried: np.ndarray, step: int) -> np.ndarray:
        """:meth:`picks` from the network's predicted gains ``q`` for those states (changed in place)."""
        q[tried.astype(bool)] = -np.inf
        own = np.argmax(q, axis=1)
        rows = np.arange(len(q))
        fallback = own.copy()
        for i in rows:
            fallback[i] = next((c for c in self.portfolio if not tried[i, c]), own[i])
        take = q[rows, own] - q[rows, fallback] > self.margins[min(step, len(self.margins) - 1)]
        return np.where(take, own, fallback)


def rollout_states(heads: np.ndarray, sigs: np.ndarray, scores: np.ndarray, default: np.ndarray, orders: np.ndarray):
    """States and targets along given pick orders: (states, gains, untried masks)."""
    n, k = scores.shape
    states, gains, masks = [], [], []
    for i in range(n):
        tried = np.zeros(k, np.float32)
        rel = scores[i] - default[i]
        best = 0.0
        for step, c in enumerate(orders[i]):
            states.append(encode(heads[i], tried, sigs[i], best, step))
            gains.append(np.maximum(rel - best, 0.0))
            masks.append(1.0 - tried)
            tried = tried.copy()
            tried[c] = 1.0
            best = max(best, rel[c])
    return np.stack(states), np.stack(gains).astype(np.float32), np.stack(masks)


def policy_orders(policy: Policy, heads: np.ndarray, sigs: np.ndarray, scores: np.ndarray, default: np.ndarray,
                  steps: int, rng: np.random.Generator | None = None, epsilon: float = 0.0) -> np.ndarray:
    """A policy's pick orders on labelled images (epsilon: share of random picks)."""
    n, k = scores.shape
    steps = min(steps, k)
    orders = np.zeros((n, steps), np.int64)
    tried = np.zeros((n, k), np.float32)
    rel = scores - default[:, None]
    best = np.zeros(n)
    for step in range(steps):
        x = np.stack([encode(heads[i], tried[i], sigs[i], best[i], step) for i in range(n)])
        picks = policy.picks(x, tried, step)
        if rng is not None and epsilon > 0:
            for i in np.nonzero(rng.random(n) < epsilon)[0]:
                picks[i] = rng.choice(np.nonzero(tried[i] == 0)[0])
        orders[:, step] = picks
        tried[np.arange(n), picks] = 1.0
        best = np.maximum(best, rel[np.arange(n), picks])
    return orders


def best_of_rows(scores: np.ndarray, default: np.ndarray, orders: np.ndarray, picks: int) -> np.ndarray:
    """Per image, the best of the defaults and the first ``picks`` of its order."""
    if picks <= 0:
        return default.astype(np.float64)
    chosen = np.take_along_axis(scores, orders[:, :picks], axis=1)
    return np.maximum(default, chosen.max(axis=1))


def best_of(scores: np.ndarray, default: np.ndarray, orders: np.ndarray, picks: int) -> float:
    """Mean over images of the best of the defaults and the first ``picks`` of each order."""
    return float(best_of_rows(scores, default, orders, picks).mean())


#: A departure from the portfolio is kept only where its held-out gain is this many standard errors above 0,
#: and no family of images loses by it by as many of its own: gains smaller than their noise are not taken.
DEPARTURE_Z = 1.0
#: Families with fewer held-out images than this are not checked on their own (too few to tell).
MIN_FAMILY = 15


def _standard_error(values: np.ndarray) -> float:
    return float(values.std(ddof=1) / math.sqrt(len(values)))


def holds_up(gains: np.ndarray, families: np.ndarray) -> bool:
    """Whether per-image ``gains`` over the portfolio (held-out) are a real gain: their mean above
    :data:`DEPARTURE_Z` standard errors, and no family with :data:`MIN_FAMILY` images or more whose mean
    is a loss larger than :data:`DEPARTURE_Z` of its standard errors."""
    if len(gains) < 2 or gains.mean() <= DEPARTURE_Z * _standard_error(gains):
        return False
    for family in np.unique(families):
        member = gains[families == family]
        if len(member) >= MIN_FAMILY and member.mean() < -DEPARTURE_Z * _standard_error(member):
            return False
    return True


def greedy_portfolio(scores: np.ndarray, default: np.ndarray, size: int) -> list[int]:
    """The ``size`` candidates, in greedy order, that maximise the mean best-of over the images."""
    best = default.copy()
    chosen: list[int] = []
    for _ in range(min(size, scores.shape[1])):
        gain = np.maximum(scores, best[:, None]).mean(axis=0)
        gain[chosen] = -np.inf
        c = int(np.argmax(gain))
        chosen.append(c)
        best = np.maximum(best, scores[:, c])
    return chosen


MARGINS = (0.0, 0.05, 0.1, 0.2, 0.4, math.inf)
BUDGETS = (2, 4, 8)  # budgets the held-out selection averages over


def fit(heads: np.ndarray, sigs: np.ndarray, scores: np.ndarray, default: np.ndarray, steps: int = 7, hidden: int = 256,
        rounds: int = 3, epochs: int = 20, random_orders: int = 4, seed: int = 0, lr: float = 1e-3,
        weight_decay: float = 1e-5, holdout: float = 0.15, threads: int = 1,
        families: np.ndarray | None = None) -> tuple[Policy, dict]:
    """Train a chooser on labelled images: imitation of the true gains, with DAgger rounds.

    A seeded ``holdout`` share of the images is kept out of training; after
    each round, each step's margin over the portfolio is chosen from
    :data:`MARGINS` on it: the one with the largest held-out gain among
    those whose gain :func:`holds_up` (per image family: ``families``, one
    label per image), else the portfolio's pick. The round whose policy
    scores best there (mean best-of over :data:`BUDGETS`) is kept. Returns
    the policy and a report: per round, the held-out best-of of the network
    alone, of the portfolio and of the chosen policy (the learning curve).
    """
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    n, k = scores.shape
    held = rng.random(n) < holdout if n >= 20 else np.zeros(n, bool)
    fit_idx, held_idx = np.nonzero(~held)[0], np.nonzero(held)[0]
    H, G, S, D = heads[fit_idx], sigs[fit_idx], scores[fit_idx], default[fit_idx]
    portfolio = greedy_portfolio(S, D, steps)
    m = len(fit_idx)
    orders = [np.tile(np.array(portfolio), (m, 1))]
    orders += [np.stack([rng.permutation(k)[:steps] for _ in range(m)]) for _ in range(random_orders)]
    data = [rollout_states(H, G, S, D, o) for o in orders]
    dim = data[0][0].shape[1]
    model = torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, hidden),
                                torch.nn.ReLU(), torch.nn.Linear(hidden, k))
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)

    def held_best_of(policy: Policy, budgets=BUDGETS) -> dict[int, float]:
        idx = held_idx if len(held_idx) else fit_idx
        own = policy_orders(policy, heads[idx], sigs[idx], scores[idx], default[idx], max(budgets) - 1)
        return {b: best_of(scores[idx], default[idx], own, b - 1) for b in budgets}

    judged = held_idx if len(held_idx) else fit_idx
    family = (np.asarray(families) if families is not None else np.zeros(n, np.int64))[judged]

    def held_rows(policy: Policy, budget: int) -> np.ndarray:
        own = policy_orders(policy, heads[judged], sigs[judged], scores[judged], default[judged], budget - 1)
        return best_of_rows(scores[judged], default[judged], own, budget - 1)

    def select_margins(net: Net) -> Policy:
        """Step by step, the margin with the largest held-out gain after that step over the portfolio's
        pick, among those whose gain holds up; none: the portfolio's pick."""
        margins: list[float] = []
        for step in range(steps):
            base = held_rows(Policy(net, portfolio, margins + [math.inf]), step + 2)
            choice, top = math.inf, 0.0
            for m in MARGINS[:-1]:
                gains = held_rows(Policy(net, portfolio, margins + [m]), step + 2) - base
                if holds_up(gains, family) and gains.mean() > top:
                    choice, top = m, float(gains.mean())
            margins.append(choice)
        return Policy(net, portfolio, margins)

    best: tuple[float, Policy] | None = None
    curve = []
    for r in range(rounds):
        x = torch.from_numpy(np.concatenate([d[0] for d in data]))
        y = torch.from_numpy(np.concatenate([d[1] for d in data]) * GAIN_SCALE)
        mask = torch.from_numpy(np.concatenate([d[2] for d in data]))
        for _epoch in range(epochs):
            perm = torch.randperm(len(x))
            total = 0.0
            for start in range(0, len(x), 512):
                idx = perm[start:start + 512]
                err = (model(x[idx]) - y[idx]) ** 2 * mask[idx]
                loss = err.sum() / mask[idx].sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
        net = Net([(layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy())
                   for layer in model if isinstance(layer, torch.nn.Linear)])
        policy = select_margins(net)
        row = {"round": r + 1, "loss": total / len(x),
               "margins": [m if math.isfinite(m) else None for m in policy.margins],
               **{f"net_{b}": v for b, v in held_best_of(Policy(net, portfolio, [0.0])).items()},
               **{f"portfolio_{b}": v for b, v in held_best_of(Policy(net, portfolio, [math.inf])).items()},
               **{f"chooser_{b}": v for b, v in held_best_of(policy).items()}}
        curve.append(row)
        log.info("chooser_round", round=r + 1, of=rounds, states=len(x),
                 **{k: round(v, 5) if isinstance(v, float) else v for k, v in row.items() if k != "round"})
        mean = float(np.mean([row[f"chooser_{b}"] for b in BUDGETS]))
        if best is None or mean > best[0] + 1e-9:
            best = (mean, policy)
        if r + 1 < rounds:  # DAgger: learn the true gains in the states the network itself reaches
            own = policy_orders(Policy(net, portfolio, [0.0]), H, G, S, D, steps)
            noisy = policy_orders(Policy(net, portfolio, [0.0]), H, G, S, D, steps, rng, epsilon=0.3)
            data += [rollout_states(H, G, S, D, own), rollout_states(H, G, S, D, noisy)]
    policy = best[1]
    margins = [m if math.isfinite(m) else None for m in policy.margins]  # None: the portfolio's pick
    log.info("chooser_selected", margins=margins, held_images=len(held_idx))
    return policy, {"held_images": int(len(held_idx)), "margins": margins, "curve": curve}
