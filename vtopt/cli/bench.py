"""``vtopt bench``: where an environment step's time goes, measured against VTracer itself.

Every figure comes from this run, on the same images: VTracer alone, the
stages of an env step, env steps/s with 1 and 2 subprocess envs, training
steps/s of the ``cpu`` preset's algorithm (its settings as a laptop runs
them), ``optimize`` throughput, labelled conversions/s against bare VTracer
on the same cores, peak memory; then the figures that the project's targets
are stated in, each with its target.
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import vtracer

from ..config.checks import load_config
from ..config.schema import PRESETS_DIR
from ..env.data import load_folder
from ..env.scoring import build_scorer
from ..env.vecenv import make_vec_env
from ..errors import VtoptError
from ..plugin.components import Sample, TrainContext
from ..plugin.manager import PluginManager
from ..vtracer.params import action_size, action_to_params, check_params
from ..vtracer.synthetic import KINDS, generate
from ..vtracer.vectorize import render

TARGETS = {
    "env step / VTracer alone (256 px)": ("<=", 1.3),
    "2 envs / 1 env steps/s": (">=", 1.7),
    "training / env-only steps/s": (">=", 0.9),
    "optimize / bare VTracer x4 images/s": (">=", 0.8),
    "whole-process optimize / bare VTracer process": (">=", 1.1),
    "labelled / bare VTracer conversions/s": (">=", 0.75),
    "replay env steps/s per core": (">=", 20000.0),
    "peak RSS per env process (MB)": ("<=", 150.0),
    "one-image optimize, whole process (s)": ("<=", 0.4),
}


_BARE = """
import sys, time, vtracer
from pathlib import Path
params = [{PARAMS}]
start = time.perf_counter()
for f in sorted(Path(sys.argv[1]).glob("*.png")):
    data = f.read_bytes()
    for p in params:
        vtracer.convert_raw_image_to_svg(data, img_format="png", **p)
print(time.perf_counter() - start)
"""


def whole_process(images, policy: Path | None, workers: int) -> tuple[float, float, float, float]:
    """As a user runs it: (one-image ``vtopt optimize`` seconds, the median of 3; ``vtopt optimize``
    on all images, seconds; one bare-VTracer process doing 4 conversions per image, seconds; the same
    on one image, seconds, the median of 3)."""
    import subprocess
    import sys

    rng = np.random.default_rng(1)
    params = [check_params({})] + [check_params(action_to_params(rng.uniform(-1, 1, action_size()))) for _ in range(3)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "in"
        folder.mkdir()
        for image in images:
            (folder / f"{image.name}.png").write_bytes(image.png)
        model = ["--model", str(policy)] if policy else []

        def timed(args: list[str]) -> float:
            start = time.perf_counter()
            subprocess.run(args, check=True, capture_output=True)
            return time.perf_counter() - start

        one = statistics.median(
            timed([sys.executable, "-m", "vtopt", "-q", "optimize", str(folder / f"{images[i].name}.png"),
                   "--out", str(Path(tmp) / f"one{i}"), "--budget", "4", *model]) for i in range(min(3, len(images))))
        full = timed([sys.executable, "-m", "vtopt", "-q", "optimize", str(folder), "--out", str(Path(tmp) / "all"),
                      "--budget", "4", "--workers", str(workers), *model])
        script = _BARE.replace("{PARAMS}", ", ".join(map(repr, params)))
        bare = timed([sys.executable, "-c", script, str(folder)])
        bare_one = []
        for i in range(min(3, len(images))):
            single = Path(tmp) / f"single{i}"
            single.mkdir()
            (single / f"{images[i].name}.png").write_bytes(images[i].png)
            bare_one.append(timed([sys.executable, "-c", script, str(single)]))
    return one, full, bare, statistics.median(bare_one)


_LABELLER: dict[str, Any] = {}


def _labeller(scorer) -> None:
    import cv2

    cv2.setNumThreads(1)  # one labelling process per core already
    _LABELLER["scorer"] = scorer


def _label_image(task) -> int:
    """What labelling does per image: the defaults' outcome, then each candidate's, then forget it."""
    image, pool = task
    scorer = _LABELLER["scorer"]
    scorer.defaults(image)
    for params in pool:
        scorer.evaluate(image, params)
    scorer.forget(image)
    return len(pool) + 1


def labelling_rate(images, scorer, workers: int, candidates: int) -> tuple[float, float, int]:
    """(labelled conversions/s, bare-VTracer conversions/s, conversions): the same conversions (each
    image's defaults and ``candidates`` seeded parameter sets), converted, rendered and scored as labelling
    does (one forkserver process per worker, each image's candidates in one task), and by ``workers``
    bare-VTracer processes (a shard of the images each); start-up included in both."""
    import multiprocessing
    import subprocess
    import sys
    from concurrent.futures import ProcessPoolExecutor

    rng = np.random.default_rng(2)
    pool = [check_params(action_to_params(rng.uniform(-1, 1, action_size()))) for _ in range(candidates)]
    conversions = len(images) * (len(pool) + 1)
    start = time.perf_counter()
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"), initializer=_labeller,
                             initargs=(scorer,)) as ex:
        done = sum(ex.map(_label_image, [(image, pool) for image in images], chunksize=4))
    labelled = done / (time.perf_counter() - start)
    script = _BARE.replace("{PARAMS}", ", ".join(map(repr, [check_params({})] + pool)))
    with tempfile.TemporaryDirectory() as tmp:
        shards = [Path(tmp) / str(w) for w in range(workers)]
        for i, image in enumerate(images):
            shards[i % workers].mkdir(exist_ok=True)
            (shards[i % workers] / f"{i}.png").write_bytes(image.png)
        start = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, "-c", script, str(d)], stdout=subprocess.DEVNULL)
                 for d in shards if d.is_dir()]
        if any(p.wait() for p in procs):
            raise VtoptError("bench: a bare-VTracer process failed")
        bare = conversions / (time.perf_counter() - start)
    return labelled, bare, conversions


def _median_ms(values: list[float]) -> float:
    return 1000.0 * statistics.median(values)


def _image_sets(folder: Path | None, size: int, per_kind: int) -> dict[str, list]:
    sets = {"synthetic": [generate(k, i, seed=123, size=size) for k in KINDS for i in range(per_kind)]}
    if folder is not None:
        if not folder.is_dir():
            raise VtoptError(f"{folder}: not a folder of images")
        found, rejected = load_folder(folder, "real", size)
        if not found:
            raise VtoptError(f"{folder}: no usable image ({len(rejected)} rejected)")
        sets[folder.name] = found
        if size > 256:  # the shared icons are 256 px: scale them up to measure the larger size
            from PIL import Image

            from ..vtracer.images import LogoImage

            sets[folder.name] = [LogoImage.from_rgba(im.name, im.kind, np.asarray(
                Image.fromarray(im.rgba).resize((size, size), Image.LANCZOS)), im.source) for im in sets[folder.name]]
    return sets


def stage_times(images, scorer, actions) -> dict[str, float]:
    """Median ms per conversion of VTracer alone and of each stage of an env step.

    Each conversion's stages are timed beside the env step that makes the same conversion (before it
    and after it in turn, as the second of the two runs warmer), so that load from other processes
    falls on both alike; the overhead is the median of the pairs' differences (step less its stages),
    which a spike of load in one of them moves least."""
    from ..env.gymenv import VTracerEnv

    params = [check_params(action_to_params(a)) for a in actions]
    conv, rend, metr, step, feat = [], [], [], [], []
    for image in images:
        t = time.perf_counter()
        image.features  # noqa: B018  (computed once per image, timed once)
        feat.append(time.perf_counter() - t)
        scorer.defaults(image)
    env = VTracerEnv(images, scorer, len(actions) + 1)
    scorer._results.clear()
    for i, image in enumerate(images):
        env.reset(options={"image": i})
        for j, (a, p) in enumerate(zip(actions, params)):
            first = (i + j) % 2 == 0  # the step before its stages every other time: the second is warmer
            if first:
                t = time.perf_counter()
                env.step(a)
                step.append(time.perf_counter() - t)
            t0 = time.perf_counter()
            svg = vtracer.convert_raw_image_to_svg(image.png, img_format="png", **p)
            t1 = time.perf_counter()
            pixels = render(svg, *image.size)
            t2 = time.perf_counter()
            sample = Sample(image, svg, pixels, scorer._images[image].defaults)
            states = scorer._states_of(image)
            for name, metric in scorer.metrics.items():
                metric.compute(sample, states[name])
            t3 = time.perf_counter()
            if not first:
                env.step(a)
                step.append(time.perf_counter() - t3)
            conv.append(t1 - t0), rend.append(t2 - t1), metr.append(t3 - t2)
    mean = lambda xs: 1000.0 * statistics.fmean(xs)  # noqa: E731  (means add up; medians do not)
    out = {"vtracer_alone": _median_ms(conv), "env_step": _median_ms(step), "convert": mean(conv),
           "render": mean(rend), "metrics": mean(metr), "env_step_mean": mean(step), "features_per_image": mean(feat)}
    out["overhead"] = _median_ms([s - c - r - m for s, c, r, m in zip(step, conv, rend, metr)])
    return out


def env_rate(images, scorer, n_envs: int, seconds: float, executor=None) -> tuple[float, list[float]]:
    env = make_vec_env(images, scorer, 4, n_envs, seed=0, executor=executor)
    try:
        rng = np.random.default_rng(0)
        env.reset()
        steps, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            env.step(rng.uniform(-1, 1, (n_envs, action_size())).astype(np.float32))
            steps += n_envs
        rate = steps / (time.perf_counter() - start)
        rss = env.env_method("peak_rss_mb") if executor is None else []
        return rate, rss
    finally:
        env.close()


def replay_rate(images, scorer, seconds: float, pool_size: int = 128, advisor=None) -> float:
    """Steps per CPU second of one :class:`vtopt.PoolEnv` replaying labels (``env.actions: pool``), in this process:
    uniform random picks among ``pool_size`` candidates (the ``advisor``'s pool, when one advises),
    episodes of 4 conversions. The label values are drawn at random: a lookup costs the same whatever
    it holds, and labelling for real would take ``len(images) * pool_size`` conversions."""
    from ..env.labels import CELL, HEAD, Labels, make_pool
    from ..env.poolenv import PoolEnv

    rng = np.random.default_rng(0)
    n = len(images)
    pool = advisor.pool if advisor is not None else make_pool(pool_size, 0)
    pool_size = len(pool)
    cell = [0.95, 0.95, 3000.0] + [0.05] * (CELL - 3)
    table = np.concatenate([rng.uniform(0.9, 1.0, (n, 2)), rng.integers(1000, 20000, (n, 2)),
                            rng.uniform(0.0, 0.1, (n, HEAD - 4)),
                            np.tile(cell, pool_size) + rng.uniform(-0.05, 0.05, (n, CELL * pool_size))], 1)
    env = PoolEnv(images, scorer, 4, pool, Labels(table), advisor=advisor)
    actions = rng.integers(pool_size, size=100_000).tolist()
    env.reset(seed=0)
    for image in images:  # features are computed once per image, not timed
        image.features  # noqa: B018
    steps, start = 0, time.process_time()  # CPU time: steps per core, whatever else shares the machine
    while time.process_time() - start < seconds:
        for a in actions[:10_000]:
            if env.step(a)[2]:
                env.reset()
        steps += 10_000
    return steps / (time.process_time() - start)


def training_rate(algorithm: Any, images, scorer, n_envs: int, timesteps: int) -> float:
    """Timesteps/s of ``algorithm.learn`` on ``n_envs`` subprocess envs, as ``on_step`` counts them."""
    env = make_vec_env(images, scorer, 4, n_envs, seed=0)
    done = [0]

    def on_step(infos, dones, steps: int) -> bool:
        done[0] = steps
        return True

    try:
        with tempfile.TemporaryDirectory() as tmp:
            ctx = TrainContext(env=env, images=images, scorer=scorer, total_timesteps=timesteps, seed=0, device="cpu",
                               threads=1, run_dir=Path(tmp), on_step=on_step, on_rollout_end=lambda steps: None)
            start = time.perf_counter()
            algorithm.learn(ctx)
            return done[0] / (time.perf_counter() - start)
    finally:
        env.close()


def training_params(params: dict[str, Any]) -> dict[str, Any]:
    """The preset's algorithm settings as the bench trains with them: reinforcement only, on the envs
    it measures (imitation, ``imitate``, needs the pool env's labels, which the bench does not make)."""
    return {k: v for k, v in params.items() if not k.startswith("imitate")}


def optimize_rate(images, policy: Path | None, workers: int) -> tuple[float, float]:
    """(optimize images/s at budget 4, bare VTracer images/s doing 4 conversions each in one process)."""
    from ..apply import apply

    rng = np.random.default_rng(1)
    params = [check_params(action_to_params(rng.uniform(-1, 1, action_size()))) for _ in range(3)]
    start = time.perf_counter()
    for image in images:
        vtracer.convert_raw_image_to_svg(image.png, img_format="png", **check_params({}))
        for p in params:
            vtracer.convert_raw_image_to_svg(image.png, img_format="png", **p)
    bare = len(images) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for image in images:
            path = Path(tmp) / f"{image.name}.png"
            path.write_bytes(image.png)
            files.append(path)
        method, meta = apply.model_method(policy, 4)
        outputs = [str(Path(tmp) / n) for n in apply.output_names(files)]
        start = time.perf_counter()
        rows = apply.run_images(files, outputs, [method], meta["reward_weights"], workers)
        rate = len(rows) / (time.perf_counter() - start)
    return rate, bare


def run_bench(folder: Path | None, sizes: list[int], seconds: float, per_kind: int, workers: int,
              policy: Path | None, printer=print, executor: str | None = None, address: str | None = None,
              candidates: int = 16, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure and print (``printer``) every figure; ``progress`` (default: stderr) says what is being
    measured before each step that prints nothing for a while."""
    progress = progress or (lambda line: print(line, file=sys.stderr, flush=True))
    pm = PluginManager()
    # what a laptop trains: the cpu preset's reward and algorithm (unchecked: the checks would import
    # torch here, before the optimize workers fork from this process)
    preset = load_config(PRESETS_DIR / "cpu.yaml").config
    scorer = build_scorer(pm, preset)
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, action_size()).astype(np.float32) for _ in range(3)]
    results: dict[str, Any] = {"stages": {}}
    w = max(14, len(folder.name) if folder else 0)  # the set's column: a long folder name widens it
    printer(f"{'':<{w + 5}} {'median ms':^18} {'':>8} {'ms per conversion':^45}")
    printer(f"{'set':<{w}} {'px':>4} {'VTracer':>8} {'env step':>9} {'step/VT':>8} {'convert':>8} {'render':>7} "
            f"{'metrics':>8} {'overhead':>9} {'features':>9}")
    for size in sizes:
        for name, images in _image_sets(folder, size, per_kind).items():
            t = stage_times(images, scorer, actions)
            results["stages"][f"{name}@{size}"] = t
            printer(f"{name:<{w}} {size:>4} {t['vtracer_alone']:>8.2f} {t['env_step']:>9.2f} "
                    f"{t['env_step'] / t['vtracer_alone']:>8.2f} {t['convert']:>8.2f} {t['render']:>7.2f} "
                    f"{t['metrics']:>8.2f} {t['overhead']:>9.2f} {t['features_per_image']:>9.2f}")
            scorer = build_scorer(pm, preset)  # fresh caches per set
    printer("(convert, render, metrics: means; overhead: the median of each env step less its own stages; "
            "features: per image)")
    size = 256 if 256 in sizes else sizes[0]
    sets = _image_sets(folder, size, per_kind)
    set_name = folder.name if folder else "synthetic"
    images = sets[set_name]
    progress(f"measuring on {len(images)} {set_name} images at {size} px: env steps/s with 1 and 2 envs "
             f"({seconds:g} s each), label replay ({seconds:g} s)")
    r1, rss1 = env_rate(images, scorer, 1, seconds)
    r2, rss2 = env_rate(images, scorer, 2, seconds)
    replay = replay_rate(images, scorer, seconds)
    advised = math.nan  # the cpu preset's PPO env: replay with its advisor's advice (env.pool.advisor)
    spec = preset.env.pool.advisor if preset.env.pool is not None else None
    if spec is not None:
        from ..apply.model import load_advisor

        try:
            advised = replay_rate(images, scorer, seconds, advisor=load_advisor(pm, spec).advisor)
        except VtoptError as exc:
            progress(f"no advised replay figure: {exc}")
    progress(f"measuring: optimize against bare VTracer, in this process and as whole processes ({workers} workers)")
    opt, bare = optimize_rate(images, policy, workers)  # before any torch work here: its workers fork from us
    one, full, bare_process, bare_one = whole_process(images, policy, workers)
    progress(f"measuring: labelling {candidates} candidates per image against bare VTracer")
    labelled, bare_labels, label_conversions = labelling_rate(images, scorer, workers, candidates)
    progress(f"measuring: training {preset.algorithm.name} for 2,048 timesteps on 2 envs")
    algorithm = pm.create("algorithm", preset.algorithm.name, training_params(preset.algorithm.params))
    train = training_rate(algorithm, images, scorer, 2, 2048)
    main_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    key = f"{set_name}@{size}"
    step_ratio = results["stages"][key]["env_step"] / results["stages"][key]["vtracer_alone"]
    results.update(replay_env_steps_per_s_1=replay, advised_replay_env_steps_per_s_1=advised, env_steps_per_s_1=r1,
                   env_steps_per_s_2=r2, train_steps_per_s_2=train,
                   optimize_images_per_s=opt, bare_vtracer_x4_images_per_s=bare, one_image_optimize_s=one,
                   whole_optimize_s=full, bare_vtracer_process_s=bare_process, one_image_bare_vtracer_s=bare_one,
                   labelled_conversions_per_s=labelled, bare_vtracer_conversions_per_s=bare_labels,
                   peak_rss_mb={"main": main_rss, "env_processes": rss2})
    ratios = {
        f"env step / VTracer alone ({size} px)": step_ratio,
        "2 envs / 1 env steps/s": r2 / r1,
        "training / env-only steps/s": train / r2,
        "optimize / bare VTracer x4 images/s": opt / bare,
        "whole-process optimize / bare VTracer process": bare_process / full,
        "labelled / bare VTracer conversions/s": labelled / bare_labels,
        "replay env steps/s per core": replay,
        "peak RSS per env process (MB)": max(rss2),
        "one-image optimize, whole process (s)": one,
    }
    results["ratios"] = ratios
    printer("")
    printer(f"label replay (env.actions: pool, 128 candidates, picks only): {replay:.0f} env steps/s on one core; "
            f"with the cpu preset's advisor (env.pool.advisor, its pool): {advised:.0f}")
    printer(f"env steps/s: 1 env {r1:.1f}, 2 envs {r2:.1f}; training ({preset.algorithm.name}, the cpu preset's "
            f"settings without imitation) with 2 envs {train:.1f} steps/s")
    printer(f"optimize (budget 4, {workers} workers): {opt:.2f} images/s; bare VTracer x4 in one process: {bare:.2f} images/s")
    printer(f"whole processes on {len(images)} images at budget 4: vtopt optimize {full:.2f} s, one bare-VTracer "
            f"process {bare_process:.2f} s; one image: vtopt optimize {one:.2f} s, a bare-VTracer process {bare_one:.2f} s")
    printer(f"labelling {label_conversions} conversions ({len(images)} images, their defaults and {candidates} "
            f"candidates) on {workers} workers: {labelled:.1f} conversions/s; bare VTracer in {workers} processes: "
            f"{bare_labels:.1f} conversions/s")
    printer(f"peak RSS: main {main_rss:.0f} MB, env processes {', '.join(f'{r:.0f}' for r in rss2)} MB")
    if executor is not None:  # training's envs on that executor, beside the local subprocesses
        progress(f"measuring: env steps/s on {executor} ({seconds:g} s each)")
        remote = pm.create_executor(executor, address)
        a1, _ = env_rate(images, scorer, 1, seconds, remote)
        a2, _ = env_rate(images, scorer, 2, seconds, remote)
        results.update({f"{executor}_env_steps_per_s_1": a1, f"{executor}_env_steps_per_s_2": a2})
        printer(f"env steps/s on {executor}: 1 actor {a1:.1f}, 2 actors {a2:.1f} "
                f"(local subprocesses: 1 env {r1:.1f}, 2 envs {r2:.1f})")
    printer("")
    printer(f"{'figure':<46} {'measured':>9} {'target':>10}  met")
    for name, value in ratios.items():
        op, bound = TARGETS[name if not name.startswith("env step /") else "env step / VTracer alone (256 px)"]
        if value is None:
            printer(f"{name:<46} {'-':>9} {op + ' ' + f'{bound:g}':>10}  -")
            continue
        ok = value <= bound if op == "<=" else value >= bound
        printer(f"{name:<46} {value:>9.2f} {op + ' ' + f'{bound:g}':>10}  {'yes' if ok else 'NO'}")
    return results
