"""Faults, round 3: a shared run folder, damaged caches, memory, configs at the extremes, damaged histories."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import structlog.testing
from conftest import REPO, TINY_RUN, write_config

import vtopt
from vtopt.cli import main
from vtopt.env.labels import CELL
from vtopt.files import temp_name
from vtopt.training.rundir import RunDirLock
from vtopt.training.runfiles import LOCK


def _env():
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'plugins'}"}


# -- 1. one run per folder ----------------------------------------------------------------


def test_a_second_process_on_a_run_folder_is_refused_naming_the_holder(tmp_path, capsys):
    cfg = write_config(tmp_path, TINY_RUN.replace("timesteps: 96", "timesteps: 100000"))
    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-m", "vtopt", "-q", "run", str(cfg), "--out", str(out)],
                             env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not ((out / LOCK).is_file() and (out / LOCK).read_text().strip()):
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert (out / LOCK).read_text().strip() == str(first.pid)
        for extra in ([], ["--force"], ["--resume"]):
            assert main(["run", str(cfg), "--out", str(out), *extra]) == 1
            err = capsys.readouterr().err.strip()
            assert err == (f"vtopt: error: {out}: in use by another vtopt process (pid {first.pid}); wait for it to "
                           "finish, or stop it, or choose another folder"), extra
        assert main(["report", str(out)]) == 1
        assert f"{out}: in use by another vtopt process (pid {first.pid})" in capsys.readouterr().err
        assert first.poll() is None  # the first run goes on, untouched
    finally:
        first.send_signal(signal.SIGKILL)  # as the OOM killer would: the kernel frees the lock
        first.wait()
    with RunDirLock(out) as lock:
        assert (out / LOCK).read_text().strip() == str(os.getpid()) and lock.fd is not None


def test_temp_names_are_unique_per_process(tmp_path):
    path = tmp_path / "config.yaml"
    here = temp_name(path)
    there = subprocess.run([sys.executable, "-c", f"from vtopt.files import temp_name; print(temp_name({str(path)!r}))"],
                           env=_env(), capture_output=True, text=True, check=True).stdout.strip()
    assert here.parent == path.parent and here.name.startswith(".config.yaml.") and str(here) != there


# -- 2. caches that heal --------------------------------------------------------------------


def _damage(cache, how: str) -> None:
    data = cache.read_bytes()
    if how == "truncated":
        cache.write_bytes(data[: len(data) // 2])
    elif how == "emptied":
        cache.write_bytes(b"")
    elif how == "random":
        cache.write_bytes(np.random.default_rng(0).bytes(len(data)))
    elif how == "flipped":
        i = len(data) - 400  # inside the cells array: the zip's CRC no longer matches
        cache.write_bytes(data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1:])
    elif how == "pickled":
        with open(cache, "wb") as fh:
            np.save(fh, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif how == "wrong shape":  # the right format, arrays that do not fit the pool
        with np.load(cache) as saved:
            arrays = {k: saved[k] for k in saved.files}
        arrays["cells"] = arrays["cells"][:, :, :2]
        np.savez(cache, **arrays)


@pytest.mark.parametrize("how", ["truncated", "emptied", "random", "flipped", "pickled", "wrong shape"])
def test_a_damaged_labels_cache_is_moved_aside_and_the_labels_made_again(tmp_path, how):
    from vtopt import label, make_pool
    from vtopt.env.scoring import make_scorer
    from vtopt.vtracer.images import load_image

    images = [load_image(p, "x") for p in sorted((REPO / "tests" / "data" / "corpus" / "twemoji").glob("*.png"))[:2]]
    scorer, pool = make_scorer(vtopt.PluginManager(), {"ssim_rgb": 1.0, "size": -0.02}), make_pool(2, seed=0)
    first = label(images, scorer, pool, tmp_path, workers=1)
    (cache,) = tmp_path.glob("labels-*.npz")
    _damage(cache, how)
    damaged = cache.read_bytes()
    with structlog.testing.capture_logs() as logs:
        again = label(images, scorer, pool, tmp_path, workers=1)
    warned = [e for e in logs if e["event"] == "labels_cache_damaged"]
    assert len(warned) == 1 and warned[0]["file"] == str(cache), logs
    aside = cache.with_name(cache.name + ".damaged")
    assert warned[0]["moved_to"] == str(aside) and aside.read_bytes() == damaged
    np.testing.assert_allclose(again.table, first.table, atol=1e-6)  # made again, in full
    with np.load(cache) as saved:  # and a sound cache written in its place
        assert saved["cells"].shape == (2, 2, CELL)


def test_long_labelling_saves_as_it_goes(tmp_path, monkeypatch):
    """Labelling stopped after its second image (as by Ctrl-C) keeps the first two in the cache."""
    from vtopt.env import labels as L
    from vtopt.env.scoring import make_scorer
    from vtopt.vtracer.images import load_image

    images = [load_image(p, "x") for p in sorted((REPO / "tests" / "data" / "corpus" / "twemoji").glob("*.png"))[:3]]
    scorer, pool = make_scorer(vtopt.PluginManager(), {"ssim_rgb": 1.0, "size": -0.02}), L.make_pool(1, seed=0)
    monkeypatch.setattr(L, "SAVE_SECONDS", 0.0)
    put, calls = L._Cache.put, []

    def put_then_stop(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        put(self, *args)

    monkeypatch.setattr(L._Cache, "put", put_then_stop)
    with pytest.raises(KeyboardInterrupt):
        L.label(images, scorer, pool, tmp_path, workers=1)
    (cache,) = tmp_path.glob("labels-*.npz")
    with np.load(cache) as saved:
        assert len(saved["hashes"]) == 2


def test_a_damaged_npm_package_in_the_corpus_cache_is_moved_aside_and_fetched_again(tmp_path, monkeypatch):
    from test_corpus import _fake_package

    from vtopt.cli.corpus import ICON_SETS, fetch

    s = ICON_SETS["flat-color-icons"]
    _fake_package(tmp_path / "good", s.name, s.version)
    (good,) = (tmp_path / "good").glob("*.tgz")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / good.name).write_bytes(good.read_bytes()[:-40])  # truncated
    npm = tmp_path / "bin" / "npm"  # `npm pack SPEC --pack-destination DIR`, offline
    npm.parent.mkdir()
    npm.write_text(f'#!/bin/sh\ncp "{good}" "$4/pkg.tgz"\n')
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{npm.parent}{os.pathsep}{os.environ['PATH']}")
    with structlog.testing.capture_logs() as logs:
        data = fetch(s, cache)
    assert "red-square" in data["icons"]
    (warned,) = [e for e in logs if e["event"] == "npm_cache_damaged"]
    assert warned["file"] == str(cache / good.name) and (cache / (good.name + ".damaged")).is_file()


# -- 4. configs at the extremes -------------------------------------------------------------


def _validate(capsys, path) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    return code, (captured.err + captured.out).splitlines()


def test_a_config_with_too_many_nodes_says_what_it_counts_without_guessing_an_alias_bomb(tmp_path, capsys,
                                                                                          monkeypatch):
    monkeypatch.setattr("vtopt.config.yamlfile.MAX_YAML_NODES", 500)  # a stand-in for 55,556 entries and 100,000
    cfg = write_config(tmp_path, "data:\n  folders:\n" + "".join(f"  - {{path: f{i}}}\n" for i in range(400)))
    code, lines = _validate(capsys, cfg)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0] == (f"{cfg}:251: $: the document has more than 500 nodes (mappings, lists and values); "
                        "a config has a few hundred")


@pytest.mark.parametrize("style", ["block", "flow"])
def test_a_config_nested_300_levels_deep_is_one_line_with_its_line(tmp_path, capsys, style):
    if style == "block":
        text = "run:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(300)) + "  " * 301 + "x: 1\n"
    else:
        text = "run: " + "[" * 300 + "]" * 300 + "\n"
    code, lines = _validate(capsys, write_config(tmp_path, text))
    assert code == 2 and len(lines) == 1, lines[:3]
    line = "65" if style == "block" else "1"
    assert lines[0] == f"{tmp_path / 'config.yaml'}:{line}: $: nested more than 64 levels deep (a config needs " \
                       "fewer than ten)"


@pytest.mark.parametrize("key", ["path", "seed"])
def test_a_huge_value_is_an_exit_2_with_file_line_and_is_cut_in_the_message(tmp_path, capsys, key):
    big = "a" * 200_000  # a stand-in for 5 MB: a path too long for the file system all the same
    text = (f"data:\n  folders: [{{path: '{big}'}}]\n" if key == "path" else f"run:\n  name: x\n  seed: '{big}'\n")
    code, lines = _validate(capsys, write_config(tmp_path, text))
    assert code == 2 and len(lines) == 1 and len(lines[0]) < 500, (code, len(lines), len(lines[0]))
    assert lines[0].startswith(f"{tmp_path / 'config.yaml'}:{2 if key == 'path' else 3}: ")
    assert "characters cut" in lines[0]


def test_config_errors_are_capped_at_twenty_with_and_n_more(tmp_path, capsys):
    text = "data:\n  folders:\n" + "".join(f"  - {{path: /nowhere/{i}}}\n" for i in range(300))
    code, lines = _validate(capsys, write_config(tmp_path, text))
    assert code == 2 and len(lines) == 21
    assert lines[0] == f"{tmp_path / 'config.yaml'}:3: $.data.folders[0].path: /nowhere/0 does not exist"
    assert lines[-1] == "... and 280 more problems"


# -- 5. reports from damaged histories --------------------------------------------------------


def test_a_report_from_a_damaged_history_skips_and_counts_the_lines_that_are_not_events(tmp_path, capsys):
    cfg = write_config(tmp_path, TINY_RUN)
    out = tmp_path / "run"
    assert main(["-q", "run", str(cfg), "--out", str(out)]) == 0
    history = out / "history.jsonl"
    good = history.read_bytes()
    assert b'"event": "rollout"' in good
    bad = [b'{"event": "episode", "timesteps": 3, "kind": "simple", "improvement": \xff\xfe}',  # not UTF-8
           b'[1, 2, 3]', b'{"timesteps": 4}', b'{"event": "episode", "timesteps": 5}', b"plain text",
           b'{"event": "rollout", "timest']  # cut short by a kill
    history.write_bytes(bad[0] + b"\n" + good + b"\n".join(bad[1:]) + b"\n")
    capsys.readouterr()
    assert main(["-q", "report", str(out)]) == 0, capsys.readouterr().err
    page = (out / "report.html").read_text()
    assert "6 line(s) of history.jsonl skipped: not event objects (a damaged history)." in page
    assert 'alt="learning curves"' in page  # the sound lines still draw the curves


# -- 3. memory you can bound -----------------------------------------------------------------


def test_the_memory_watchdog_alerts_past_90_percent_and_names_the_process_past_the_limit():
    from vtopt.training.memory import MB, MemoryGuard, process_tree

    tree = process_tree()
    base, own = sum(rss for _, rss in tree) / MB, tree[0][1] / MB
    first = int(own) + 100  # the child becomes the largest process
    limit = int((base + first) / 0.95)
    guard = MemoryGuard(limit)
    guard.check()
    assert guard.alert is None and guard.exceeded is None
    grow = ("import sys, time; blocks = []\n"
            "for line in sys.stdin:\n"
            "    blocks.append(bytearray(int(line) * 1024 * 1024)); print('ok', flush=True)\n")
    child = subprocess.Popen([sys.executable, "-c", grow], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        child.stdin.write(f"{first}\n")  # a real allocation, into the 90-100% band
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ok"
        guard.check()
        assert guard.alert and "% of resources.memory_limit_mb" in guard.alert and guard.exceeded is None
        child.stdin.write(f"{int(0.15 * limit)}\n")  # and past the limit
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ok"
        guard.check()
        assert guard.exceeded and f"the largest is pid {child.pid} (" in guard.exceeded, guard.exceeded
    finally:
        child.kill()
        child.wait()


def test_a_run_past_its_memory_limit_stops_with_a_checkpoint_and_exit_1(tmp_path, capsys):
    cfg = write_config(tmp_path, TINY_RUN + "resources: {memory_limit_mb: 64}\n")  # the interpreter alone is more
    out = tmp_path / "run"
    assert main(["-q", "run", str(cfg), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("vtopt: error: memory limit passed: the run's ") and "over resources.memory_limit_mb 64" in err
    assert f"the largest is pid {os.getpid()} (" in err and "stopped with checkpoint" in err
    assert list((out / "checkpoints").glob("step_*.zip")) and not (out / "summary.json").exists()


def test_more_envs_than_cores_is_a_warning_with_the_cost_in_validate_and_measured_in_the_run(tmp_path, capsys):
    cores = os.cpu_count() or 1
    if cores > 4:
        pytest.skip("starts cores + 1 subprocess envs")
    text = TINY_RUN.replace("parallel_envs: 1", f"parallel_envs: {cores + 1}").replace("timesteps: 96", "timesteps: 8")
    cfg = write_config(tmp_path, text)
    code, lines = _validate(capsys, cfg)
    assert code == 0 and lines[-1] == f"{cfg}: OK (1 warning(s))"
    assert lines[0].startswith(f"{cfg}:6: $.env.parallel_envs: warning: {cores + 1} envs on this machine's {cores} "
                               "cores: the 1 beyond the cores add no speed and cost about 96 MB")
    assert main(["-q", "run", str(cfg), "--out", str(tmp_path / "run")]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "] more_envs_than_cores" in line]
    assert len(warned) == 1, warned
    warned = warned[0]
    fields = dict(f.split("=", 1) for f in warned.split() if "=" in f and not f.startswith("hint"))
    assert fields["envs"] == str(cores + 1) and int(fields["memory_mb"]) > 20 and float(fields["start_seconds"]) > 0


@pytest.mark.parametrize("command", ["optimize", "evaluate"])
def test_an_image_over_the_memory_one_image_may_take_is_refused_or_downscaled(tmp_path, capsys, command):
    """A stand-in for one 4000x4000 image: 1000x1000 (about 215 MB) under a 200 MB limit."""
    from PIL import Image

    big = tmp_path / "big.png"
    src = sorted((REPO / "tests" / "data" / "corpus" / "twemoji").glob("*.png"))[0]
    Image.open(src).convert("RGBA").resize((1000, 1000), Image.NEAREST).save(big)
    dest = ["--out", str(tmp_path / "svg")] if command == "optimize" else ["--methods", "defaults"]
    args = [command, str(big), *dest, "--workers", "1", "--memory-limit-mb", "200", "--report"]
    assert main([*args, str(tmp_path / "refused.json")]) == 1
    err = capsys.readouterr().err
    assert (f"failed: {big}: 1000x1000 would take about 215 MB to optimise (145 MB per megapixel, measured), over "
            "the 200 MB one image may take (--memory-limit-mb 200 over 1 worker(s)); pass --downscale") in err
    assert main([*args, str(tmp_path / "downscaled.json"), "--downscale"]) == 0
    import json

    (row,) = json.loads((tmp_path / "downscaled.json").read_text())
    assert row["error"] is None and any("downscaled from 1000x1000" in n for n in row["notes"]), row
