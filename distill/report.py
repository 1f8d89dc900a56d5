"""Run reports people would rather look at than read: training curves as PNG."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

log = logging.getLogger("distill")


def _read_metrics_csv(out_dir: Path) -> list[dict]:
    files = sorted(out_dir.glob("csv/**/metrics.csv"))
    if not files:
        return []
    with open(files[-1]) as f:
        return list(csv.DictReader(f))


def plot_training_curves(out_dir: str | Path, at_init: dict, after: dict, title: str | None = None) -> Path | None:
    """Plot train KD loss per step and validation KL per evaluation into ``curves.png``.

    Reads the CSV logger's metrics; returns None (and says so) when there is nothing to plot.
    """
    out_dir = Path(out_dir)
    rows = _read_metrics_csv(out_dir)
    if not rows:
        log.info("report: no CSV metrics found, skipping curves.png")
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(key: str) -> tuple[list[float], list[float]]:
        xs, ys = [], []
        for r in rows:
            v = r.get(key, "")
            if v not in ("", None) and not math.isnan(float(v)):
                xs.append(float(r["step"]))
                ys.append(float(v))
        return xs, ys

    fig, ax = plt.subplots(figsize=(7, 4))
    for key, style in (("train/kd_kl", "-"), ("train/loss", ":"), ("val/kl", "o-")):
        xs, ys = series(key)
        if xs:
            ax.plot(xs, ys, style, label=key, alpha=0.8)
    ax.axhline(at_init["kl"], color="grey", ls="--", label=f"held-out KL at init ({at_init['kl']:.3f})")
    ax.axhline(after["kl"], color="black", ls="--", label=f"held-out KL after ({after['kl']:.3f})")
    ax.set_xlabel("step")
    ax.set_ylabel("KL(teacher‖student), nats/token")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(title or out_dir.name)
    fig.tight_layout()
    path = out_dir / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
