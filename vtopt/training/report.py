"""``vtopt report RUN_DIR``: one self-contained HTML page about a run.

Learning curves and the stage timeline come from ``history.jsonl`` (written
by vtopt itself, whatever the monitors: see :data:`vtopt.training.runfiles.HISTORY`), the
evaluation tables from ``summary.json``, and the
gallery is made anew: the run's validation images converted with VTracer's
defaults and with the run's policy, side by side. Every image is embedded
as a data URI, so the file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from ..apply.model import load_model, model_advisor
from ..config.checks import load_config
from ..env.data import load_dataset
from ..env.poolenv import model_env
from ..env.scoring import build_scorer
from ..env.search import search_image
from ..errors import VtoptError
from ..files import atomic_write_text
from ..plugin.manager import PluginManager
from .runfiles import CONFIG, HISTORY, MODEL, REPORT, SUMMARY

log = structlog.get_logger(__name__)

GALLERY_SIZE = 12


def _png_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


#: What each event the report draws must hold, beside ``event`` and ``timesteps``.
_FIELDS = {"rollout": ("mean_score", "default_mean_score", "mean_ssim", "default_mean_ssim", "bytes_ratio"),
           "episode": ("kind", "improvement"), "stage_changed": ()}


def _events(run_dir: Path) -> tuple[list[dict[str, Any]], int]:
    """The history's events, and how many lines were skipped: a line cut short by a killed run, text
    that is not UTF-8 or not JSON, JSON that is not an event object, an event without what it needs."""
    path = run_dir / HISTORY
    if not path.is_file():
        return [], 0
    out, skipped = [], 0
    for raw in path.read_bytes().splitlines():
        if not raw.strip():
            continue
        try:
            event = json.loads(raw.decode("utf-8"))
            ok = (isinstance(event, dict) and isinstance(event.get("event"), str)
                  and isinstance(event.get("timesteps"), (int, float))
                  and all(k in event for k in _FIELDS.get(event["event"], ())))
        except (UnicodeDecodeError, json.JSONDecodeError):
            ok = False
        if ok:
            out.append(event)
        else:
            skipped += 1
    return out, skipped


def _curves(events: list[dict], summary: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rollouts = [e for e in events if e["event"] == "rollout" and "mean_improvement" in e]
    episodes = [e for e in events if e["event"] == "episode"]
    stages = [e for e in events if e["event"] == "stage_changed"]
    if not rollouts and not episodes:
        return f"<p>No learning curves: the run's {HISTORY} has no rollouts or episodes.</p>"
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
    if rollouts:
        t = [e["timesteps"] for e in rollouts]
        axes[0].plot(t, [e["mean_score"] for e in rollouts], label="policy (best of episode)")
        axes[0].plot(t, [e["default_mean_score"] for e in rollouts], label="VTracer defaults", ls="--")
        axes[1].plot(t, [e["mean_ssim"] for e in rollouts], label="policy")
        axes[1].plot(t, [e["default_mean_ssim"] for e in rollouts], label="VTracer defaults", ls="--")
        axes[2].plot(t, [e["bytes_ratio"] for e in rollouts], label="bytes / defaults' (geometric mean)")
    for ax, title in zip(axes, ("score", "SSIM", "bytes relative to the defaults")):
        ax.set_title(title)
        ax.set_xlabel("timesteps")
        for e in stages:
            ax.axvline(e["timesteps"], color="grey", lw=0.6, alpha=0.6)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    parts = [f'<img alt="learning curves" src="{_png_uri(fig)}">']
    plt.close(fig)
    if episodes:
        fig, ax = plt.subplots(figsize=(15, 3.2))
        for kind in sorted({e["kind"] for e in episodes}):
            pts = [(e["timesteps"], e["improvement"]) for e in episodes if e["kind"] == kind]
            t, v = np.array(pts).T
            k = max(1, min(50, len(v) // 5))
            ax.plot(t[k - 1:], np.convolve(v, np.ones(k) / k, mode="valid"), label=kind)
        ax.set_title("improvement over the defaults per kind (rolling mean of episodes)")
        ax.set_xlabel("timesteps")
        ax.legend(fontsize=7)
        parts.append(f'<img alt="per-kind curves" src="{_png_uri(fig)}">')
        plt.close(fig)
    evals = summary.get("evaluations") or []
    if len(evals) > 1:
        fig, ax = plt.subplots(figsize=(15, 3.2))
        t = [e["timesteps"] for e in evals]
        ax.plot(t, [e["mean_score"] for e in evals], marker="o", label="all")
        for kind in sorted(evals[-1]["per_kind"]):
            ax.plot(t, [e["per_kind"].get(kind) for e in evals], marker=".", label=kind, alpha=0.7)
        ax.set_title("evaluation score on the validation images")
        ax.set_xlabel("timesteps")
        ax.legend(fontsize=7)
        parts.append(f'<img alt="evaluations" src="{_png_uri(fig)}">')
        plt.close(fig)
    return "\n".join(parts)


def _table(rows: list[list[Any]], head: list[str]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:.4f}"
        return html.escape(str(v))

    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>" + body + "</table>"


def _evaluation(summary: dict) -> str:
    ev = summary.get("evaluation") or {}
    if not ev.get("images"):
        return f"<p>No evaluation in {SUMMARY}.</p>"
    head = ["", "mean SSIM", "mean bytes", "bytes / defaults", "mean score"]
    rows = [["VTracer defaults", ev["default_mean_ssim"], ev["default_mean_bytes"], 1.0, ev["default_mean_score"]],
            ["policy", ev["mean_ssim"], ev["mean_bytes"], ev["bytes_ratio"], ev["mean_score"]]]
    for label, b in (ev.get("baselines") or {}).items():
        rows.append([label, b["mean_ssim"], b["mean_bytes"], b["bytes_ratio"], b["mean_score"]])
    kinds = [[k, v["images"], v["mean_ssim"], v["default_mean_ssim"], v["bytes_ratio"], v["mean_score"],
              v["default_mean_score"]] for k, v in (ev.get("per_kind") or {}).items()]
    return (f"<p>{ev['images']} held-out images, {summary['conversions_per_episode']} conversions each "
            "(every row keeps the best of VTracer's defaults and its own conversions).</p>"
            + _table(rows, head) + "<h3>Per kind</h3>"
            + _table(kinds, ["kind", "images", "SSIM", "defaults' SSIM", "bytes / defaults", "score",
                             "defaults' score"]))


def _stages(events: list[dict]) -> str:
    stages = [[e["timesteps"], e.get("previous") or "-", e.get("stage") or "-"]
              for e in events if e["event"] == "stage_changed"]
    if not stages:
        return "<p>No stage events.</p>"
    return _table(stages, ["timesteps", "from", "to"])


def _gallery(run_dir: Path, pm: PluginManager) -> str:
    loaded = load_config(run_dir / CONFIG)
    algorithm, meta = load_model(pm, run_dir / MODEL)
    scorer = build_scorer(pm, loaded.config)
    scorer.log_failures = False  # the run said its failed conversions; the gallery repeats its evaluation
    images = load_dataset(loaded, scorer).validation[:GALLERY_SIZE]
    env = model_env(meta, images, scorer, meta["conversions_per_episode"], keep_svg=True,
                    advisor=model_advisor(pm, meta, run_dir / "model.zip"))
    cards = []
    for i, image in enumerate(images):
        row = search_image(algorithm, env, i)
        default = scorer.defaults(image)
        buf = io.BytesIO()
        from PIL import Image

        Image.fromarray(image.rgb).save(buf, "PNG")
        original = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
        cells = [("original", original, f"{image.size[0]}x{image.size[1]} px, {image.kind}")]
        for label, svg, ssim, size in (("VTracer defaults", default.svg, default.ssim, default.svg_bytes),
                                       ("policy", row["svg"], row["ssim"], row["bytes"])):
            uri = "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()
            cells.append((label, uri, f"SSIM {ssim:.4f}, {size} bytes"))
        cards.append('<div class="card"><h4>' + html.escape(image.name) + "</h4>" + "".join(
            f'<figure><img alt="{html.escape(label)}" src="{uri}"><figcaption>{html.escape(label)}<br>'
            f"{html.escape(note)}</figcaption></figure>" for label, uri, note in cells) + "</div>")
    return "\n".join(cards)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>vtopt run {name}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }}
img {{ max-width: 100%; }}
.card {{ display: inline-block; vertical-align: top; border: 1px solid #ddd; margin: 0.4em; padding: 0.4em; }}
figure {{ display: inline-block; margin: 0.3em; text-align: center; font-size: 0.8em; }}
figure img {{ width: 160px; height: 160px; object-fit: contain; background: #fff; border: 1px solid #eee; }}
</style></head>
<body>
<h1>vtopt run: {name}</h1>
<p>{facts}</p>
<h2>Learning curves</h2>
{curves}
<h2>Curriculum stages</h2>
{stages}
<h2>Evaluation against VTracer's defaults</h2>
{evaluation}
<h2>Gallery: validation images</h2>
{gallery}
<script>
// Count the images the browser could decode (read by vtopt's own tests).
window.addEventListener("load", function () {{
  var imgs = Array.from(document.images);
  document.body.setAttribute("data-images-total", imgs.length);
  document.body.setAttribute("data-images-decoded",
    imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length);
}});
</script>
</body></html>
"""


def write_report(run_dir: Path, pm: PluginManager | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (:data:`~vtopt.training.runfiles.REPORT`) and return its path."""
    run_dir = Path(run_dir)
    if not (run_dir / SUMMARY).is_file():
        raise VtoptError(f"{run_dir}: no {SUMMARY} (not a finished run)")
    summary = json.loads((run_dir / SUMMARY).read_text(encoding="utf-8"))
    events, skipped = _events(run_dir)
    pm = pm or PluginManager()
    facts = (f"{summary['total_timesteps']} timesteps of {html.escape(summary['algorithm'])} in "
             f"{summary['wall_seconds']:.0f} s ({summary['env_steps_per_second']:.1f} env steps/s, "
             f"{summary['n_envs']} env(s)); {summary['images']['train']} training and "
             f"{summary['images']['validation']} validation images; stopped: {summary.get('stopped', 'completed')}.")
    if skipped:
        facts += f" {skipped} line(s) of {HISTORY} skipped: not event objects (a damaged history)."
        log.warning("history_lines_skipped", file=str(run_dir / HISTORY), lines=skipped)
    page = PAGE.format(name=html.escape(summary["name"]), facts=facts, curves=_curves(events, summary),
                       stages=_stages(events), evaluation=_evaluation(summary), gallery=_gallery(run_dir, pm))
    out = run_dir / REPORT
    atomic_write_text(out, page)
    return out
