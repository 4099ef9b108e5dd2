"""The monitor report: ``monitor.json`` (numbers) and a self-contained ``monitor.html``.

One plot per drifted column (reference against current), the score against the
calibration scores with the threshold, and the alert rate (and, with labels, the precision
of alerts) over time. Plots are embedded PNGs; nothing loads from the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from jinja2 import Environment, select_autoescape

from fraudvae.data.io import atomic_path
from fraudvae.data.reference import canonical_level
from fraudvae.monitor.drift import ColumnDrift, Reference
from fraudvae.report.html import figure_png

__all__ = ["write_monitor_report"]

_REF, _CUR = "#1f4e79", "#c55a11"


def _numeric_plot(name: str, ref: np.ndarray, cur: np.ndarray) -> str:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    both = np.concatenate([ref, cur])
    lo, hi = np.percentile(both, [0.5, 99.5]) if both.size else (0.0, 1.0)
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 40)
    ax.hist(
        np.clip(ref, bins[0], bins[-1]),
        bins=list(bins),
        density=True,
        alpha=0.55,
        color=_REF,
        label="training (reference)",
    )
    ax.hist(np.clip(cur, bins[0], bins[-1]), bins=list(bins), density=True, alpha=0.55, color=_CUR, label="current")
    ax.set(title=name, xlabel=name, ylabel="density")
    ax.legend(fontsize=8)
    return figure_png(fig)


def _categorical_plot(name: str, ref: dict[str, int], cur: pd.Series) -> str:
    cur_counts = cur.value_counts()
    n_ref, n_cur = max(sum(ref.values()), 1), max(int(cur_counts.sum()), 1)
    levels = sorted(
        set(ref) | set(cur_counts.index.astype(str)),
        key=lambda k: -(ref.get(k, 0) / n_ref + cur_counts.get(k, 0) / n_cur),
    )[:12]
    x = np.arange(len(levels))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.bar(x - 0.2, [ref.get(k, 0) / n_ref for k in levels], 0.4, color=_REF, label="training (reference)")
    ax.bar(x + 0.2, [cur_counts.get(k, 0) / n_cur for k in levels], 0.4, color=_CUR, label="current")
    ax.set_xticks(x, [k if len(k) <= 14 else k[:13] + "..." for k in levels], rotation=45, ha="right", fontsize=7)
    ax.set(title=name, ylabel="share of rows")
    ax.legend(fontsize=8)
    return figure_png(fig)


def _score_plot(reference: np.ndarray, current: np.ndarray, threshold: float) -> str:
    fig, ax = plt.subplots(figsize=(5, 3.2))
    both = (
        np.log10(np.clip(np.concatenate([reference, current]), 1e-3, None))
        if reference.size + current.size
        else np.zeros(1)
    )
    bins = np.linspace(both.min(), max(both.max(), both.min() + 1e-6), 40)
    for values, color, label in ((reference, _REF, "calibration (normal)"), (current, _CUR, "current")):
        ax.hist(
            np.log10(np.clip(values, 1e-3, None)), bins=list(bins), density=True, alpha=0.55, color=color, label=label
        )
    ax.axvline(np.log10(max(threshold, 1e-3)), color="#c00000", lw=1.2, label="threshold")
    ax.set(title="Anomaly score", xlabel="log10 score", ylabel="density")
    ax.legend(fontsize=8)
    return figure_png(fig)


def _timeline_plot(periods: list[dict[str, Any]], target_fpr: float | None) -> str:
    fig, ax = plt.subplots(figsize=(7, 3.2))
    x = np.arange(len(periods))
    ax.plot(x, [p["alert_rate"] for p in periods], marker="o", color=_CUR, label="alert rate")
    if target_fpr is not None:
        ax.axhline(target_fpr, color="grey", ls="--", lw=0.9, label=f"target FPR {target_fpr:.2%}")
    if any(p.get("precision") is not None for p in periods):
        ax.plot(
            x,
            [np.nan if p.get("precision") is None else p["precision"] for p in periods],
            marker="s",
            color=_REF,
            label="precision of labelled alerts",
        )
    step = max(1, len(periods) // 12)
    ax.set_xticks(x[::step], [p["period"] for p in periods][::step], rotation=45, ha="right", fontsize=7)
    ax.set(title="Alerts over time", ylabel="rate")
    ax.legend(fontsize=8)
    return figure_png(fig)


def write_monitor_report(
    out_dir: str | Path,
    *,
    document: dict[str, Any],
    reference: Reference,
    current: pd.DataFrame,
    drift: list[ColumnDrift],
    scores: np.ndarray,
    threshold: float,
) -> Path:
    """Write ``monitor.json`` and ``monitor.html`` into ``out_dir`` (each atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    plots = []
    for d in drift:
        if not d.drifted or d.kind == "score":
            continue
        if d.kind == "numeric":
            values = pd.to_numeric(current[d.column], errors="coerce").to_numpy(dtype=np.float64)
            image = _numeric_plot(d.column, np.asarray(reference.numeric[d.column]), values[np.isfinite(values)])
        else:
            image = _categorical_plot(
                d.column, reference.levels[d.column], current[d.column].dropna().map(canonical_level)
            )
        plots.append({"column": d.column, "reasons": d.reasons, "image": image})
    score_image = _score_plot(np.asarray(reference.scores), np.asarray(scores, dtype=np.float64), threshold)
    periods = document.get("alerts_over_time") or []
    timeline = _timeline_plot(periods, document.get("target_fpr")) if periods else None
    html = (
        Environment(autoescape=select_autoescape(default=True))
        .from_string(_TEMPLATE)
        .render(d=document, plots=plots, score_image=score_image, timeline=timeline, drift=document["drift"])
    )
    for name, content in (("monitor.json", json.dumps(document, indent=1, allow_nan=False)), ("monitor.html", html)):
        tmp = atomic_path(out / name)
        tmp.write_text(content)
        tmp.replace(out / name)
    return out


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fraudvae monitor report</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}
.drift{color:#c00000;font-weight:600}.ok{color:#2e7d32}.plots img{margin:6px;border:1px solid #eee}
</style></head><body>
<h1>fraudvae monitor report</h1>
<p>Model <code>{{ d.model_dir }}</code> (fraudvae {{ d.version }}), data <code>{{ d.data }}</code>:
{{ d.rows }} rows scored, {{ d.rejected }} rejected.</p>
<h2>Alerts</h2>
<table><tr><th>alert rate</th><td>{{ '%.3f%%' % (100 * d.alert_rate) }}</td></tr>
<tr><th>target false-positive rate (calibrated at fit)</th><td>{{ '%.3f%%' % (100 * d.target_fpr) if d.target_fpr is not none else 'n/a' }}</td></tr>
{% if d.labels %}<tr><th>labelled alerts</th><td>{{ d.labels.labelled_alerts }}</td></tr>
<tr><th>precision of labelled alerts</th><td>{{ '%.3f' % d.labels.precision if d.labels.precision is not none else 'n/a' }}</td></tr>
<tr><th>recall among labelled frauds</th><td>{{ '%.3f' % d.labels.recall if d.labels.recall is not none else 'n/a' }}</td></tr>{% endif %}
</table>
{% if timeline %}<img alt="alert rate over time" src="{{ timeline }}">{% endif %}
<h2>Score</h2>
<img alt="score distribution" src="{{ score_image }}">
<h2>Drift per column</h2>
<p>{{ d.drifted_columns | length }} of {{ drift | length }} compared columns drifted{% if d.drifted_columns %}: {{ d.drifted_columns | join(', ') }}{% endif %}.</p>
<table><tr><th>column</th><th>kind</th><th>test</th><th>statistic</th><th>threshold</th><th>missing (training -> current)</th><th>verdict</th></tr>
{% for c in drift %}<tr><td>{{ c.column }}</td><td>{{ c.kind }}</td><td>{{ c.test }}</td>
<td>{{ '%.4g' % c.statistic if c.statistic is not none else '' }}</td><td>{{ c.threshold if c.threshold is not none else '' }}</td>
<td>{{ '%.1f%%' % (100 * c.missing_reference) }} -> {{ '%.1f%%' % (100 * c.missing_current) }}</td>
<td class="{{ 'drift' if c.drifted else 'ok' }}">{{ ('drift: ' ~ (c.reasons | join('; '))) if c.drifted else 'no drift' }}</td></tr>{% endfor %}
</table>
<div class="plots">{% for p in plots %}<figure><img alt="{{ p.column }}: training against current" src="{{ p.image }}"><figcaption>{{ p.column }}: {{ p.reasons | join('; ') }}</figcaption></figure>{% endfor %}</div>
</body></html>
"""
