"""Peak resident memory of `vtopt optimize`'s worker for one N x N image (an upscaled flat-colour icon),
for README's "When something goes wrong": ``python tests/measure_image_memory.py 500 1000 2000``."""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from PIL import Image

SOURCE = sorted((Path(__file__).parent / "data" / "corpus" / "twemoji").glob("*.png"))[0]


def measure(side: int, tmp: Path) -> None:
    img = tmp / f"img{side}.png"
    Image.open(SOURCE).convert("RGBA").resize((side, side), Image.NEAREST).save(img)
    p = subprocess.Popen([sys.executable, "-m", "vtopt", "-q", "optimize", str(img), "--out", str(tmp / f"out{side}"),
                          "--workers", "1", "--conversion-timeout", "0"], stdout=subprocess.DEVNULL)
    root, peaks = psutil.Process(p.pid), {}
    while p.poll() is None:
        try:
            for c in [root, *root.children(recursive=True)]:
                peaks[c.pid] = max(peaks.get(c.pid, 0), c.memory_info().rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    main = peaks.pop(p.pid, 0)
    worker = max(peaks.values(), default=0)
    print(f"{side}x{side} ({side * side / 1e6:.2f} Mpx): main {main / 2**20:.0f} MB, largest worker "
          f"{worker / 2**20:.0f} MB, exit {p.returncode}", flush=True)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        for arg in sys.argv[1:]:
            measure(int(arg), Path(tmp))
