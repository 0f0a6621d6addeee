"""Memory a run may take (``resources.memory_limit_mb``), watched over the run's own processes.

A watchdog thread adds up the resident memory of the vtopt process and every process it started
(env workers, labelling workers) twice a second. Past :data:`ALERT_AT` of the limit it raises one
``memory`` alert; past the limit the run stops after the current step with a checkpoint, and exits 1
with a message naming the largest process and its size: vtopt stops itself before the kernel's OOM
killer has to. Ray actors live outside this process tree and are not counted.
"""

from __future__ import annotations

import os
import threading

import psutil

from .parts import Part

ALERT_AT = 0.9  # of the limit: one alert
MB = 1024 * 1024


def process_tree(pid: int | None = None) -> list[tuple[psutil.Process, int]]:
    """(process, resident bytes) of ``pid`` (default: this process) and all its descendants."""
    root = psutil.Process(pid or os.getpid())
    out = []
    for proc in [root, *root.children(recursive=True)]:
        try:
            out.append((proc, proc.memory_info().rss))
        except (psutil.NoSuchProcess, psutil.AccessDenied):  # ended between the listing and the reading
            pass
    return out


def describe_process(proc: psutil.Process) -> str:
    try:
        cmd = " ".join(proc.cmdline()) or proc.name()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        cmd = "ended"
    return f"pid {proc.pid} ({cmd[:80]})"


class MemoryGuard(Part):
    """A driver part: the watchdog thread measures, and the part acts on the driver's own thread
    (an alert to the monitors, a stop with a checkpoint)."""

    def __init__(self, limit_mb: int, interval: float = 0.5):
        self.limit_mb, self.interval = limit_mb, interval
        self.alerted = False
        self.alert: str | None = None  # set by the thread, said by :meth:`step`
        self.exceeded: str | None = None
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> None:
        """One measurement (the thread calls it; a test may too)."""
        tree = process_tree()
        total = sum(rss for _, rss in tree) / MB
        self.peak_mb = max(self.peak_mb, total)
        proc, rss = max(tree, key=lambda t: t[1])
        largest = f"the largest is {describe_process(proc)} at {rss / MB:.0f} MB"
        if total > self.limit_mb and self.exceeded is None:
            self.exceeded = (f"memory limit passed: the run's {len(tree)} process(es) take {total:.0f} MB, over "
                             f"resources.memory_limit_mb {self.limit_mb}; {largest}")
        elif total > ALERT_AT * self.limit_mb and not self.alerted:
            self.alerted = True
            self.alert = (f"the run's {len(tree)} process(es) take {total:.0f} MB, {total / self.limit_mb:.0%} of "
                          f"resources.memory_limit_mb {self.limit_mb}; {largest}")

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except psutil.Error:  # the process tree changed under the measurement: measure again
                continue

    def begin(self, driver, timesteps):
        if self._thread is None:
            try:  # once now, so that a run already over its limit stops at its first step, however short
                self.check()
            except psutil.Error:
                pass
            self._thread = threading.Thread(target=self._watch, name="vtopt-memory", daemon=True)
            self._thread.start()

    def step(self, driver, timesteps):
        if self.alert is not None:
            driver.run.alert("memory", self.alert, timesteps)
            self.alert = None
        if self.exceeded is not None:
            driver.stop_reason = "memory limit"
            return False
        return True

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
