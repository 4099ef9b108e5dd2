"""The offline evaluation report: ``report.json`` (numbers) and a self-contained ``report.html``.

Plots are rendered with matplotlib and embedded as base64 PNG, so the page is one file
that can be mailed or archived. Nothing in the page loads from the network.
"""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from jinja2 import Environment, select_autoescape
from sklearn.decomposition import PCA

from fraudvae.data.io import atomic_path
from fraudvae.detection.contract import score_columns
from fraudvae.detection.evaluation import curves
from fraudvae.detection.results import ScoreResult
from fraudvae.features.behaviour import describe_feature

__all__ = ["figure_png", "write_report"]


def figure_png(fig: plt.Figure) -> str:
    """A figure as a self-contained PNG data URL (the figure is closed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _plots(y: np.ndarray, result: ScoreResult, metrics: dict[str, Any]) -> dict[str, str]:
    s = result.anomaly_score
    threshold = result.threshold
    at = metrics["at_threshold"]
    c = curves(y, s)
    out: dict[str, str] = {}

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(c["recall"], c["precision"], color="#1f4e79")
    ax.scatter([at["recall"]], [at["precision"]], color="#c00000", zorder=3, label="calibrated threshold")
    ax.set(
        xlabel="recall", ylabel="precision", title=f"Precision-recall (AUPRC {metrics['auprc']:.3f})", ylim=(0, 1.02)
    )
    ax.axhline(y.mean(), color="grey", lw=0.8, ls="--", label=f"fraud rate {y.mean():.2%}")
    ax.legend(loc="upper right", fontsize=8)
    out["pr_curve"] = figure_png(fig)

    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(c["fpr"], c["tpr"], color="#1f4e79")
    ax.scatter([at["false_positive_rate"]], [at["recall"]], color="#c00000", zorder=3, label="calibrated threshold")
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set(
        xlabel="false-positive rate (symlog)", ylabel="recall", title=f"ROC (AUROC {metrics['auroc']:.3f})", xlim=(0, 1)
    )
    ax.legend(loc="lower right", fontsize=8)
    out["roc_curve"] = figure_png(fig)

    fig, ax = plt.subplots(figsize=(6, 3.5))
    shifted = np.log10(s - min(s.min(), threshold) + 1.0)
    t_shift = math.log10(threshold - min(s.min(), threshold) + 1.0)
    bins = np.linspace(shifted.min(), shifted.max(), 60).tolist()
    ax.hist(shifted[y == 0], bins=bins, alpha=0.6, density=True, label="normal", color="#1f4e79")
    ax.hist(shifted[y == 1], bins=bins, alpha=0.6, density=True, label="fraud", color="#c00000")
    ax.axvline(t_shift, color="black", ls="--", label="threshold")
    ax.set(xlabel="log10(score - min + 1)", ylabel="density", title="Anomaly scores")
    ax.legend(fontsize=8)
    out["score_histogram"] = figure_png(fig)

    latent = result.latent_mean
    if latent.shape[1] > 2:
        latent = PCA(n_components=2, random_state=0).fit_transform(latent)
    elif latent.shape[1] == 1:
        latent = np.column_stack([latent[:, 0], np.zeros(len(latent))])
    rng = np.random.default_rng(0)
    normal_idx = np.flatnonzero(y == 0)
    if normal_idx.size > 5000:
        normal_idx = rng.choice(normal_idx, 5000, replace=False)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.scatter(latent[normal_idx, 0], latent[normal_idx, 1], s=3, alpha=0.3, color="#1f4e79", label="normal")
    fraud_idx = np.flatnonzero(y == 1)
    ax.scatter(latent[fraud_idx, 0], latent[fraud_idx, 1], s=9, alpha=0.8, color="#c00000", label="fraud")
    ax.set(
        title="Latent space (posterior means" + (", PCA to 2-D)" if result.latent_mean.shape[1] > 2 else ")"),
        xlabel="z1",
        ylabel="z2",
    )
    ax.legend(fontsize=8, markerscale=2)
    out["latent_space"] = figure_png(fig)

    # The same measure and ranking as the "top flagged rows" table: the attribution
    # (score drop when the feature alone is made typical) of each row's ranked features.
    top = np.argsort(-s, kind="stable")[:15]
    attribution = np.zeros((len(top), len(result.feature_names)))
    if result.ranking is not None and result.drops is not None:
        for r, i in enumerate(top):
            attribution[r, result.ranking[i]] = result.drops[i]
    feature_order = np.argsort(-attribution.clip(min=0).mean(axis=0), kind="stable")[:12]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    im = ax.imshow(attribution[:, feature_order].clip(min=0), aspect="auto", cmap="Reds")
    ax.set_xticks(
        range(len(feature_order)), [result.feature_names[j] for j in feature_order], rotation=60, ha="right", fontsize=8
    )
    ax.set_yticks(range(len(top)), [f"row {i} ({'fraud' if y[i] else 'normal'})" for i in top], fontsize=7)
    ax.set_title("Attribution of each row's top features, top 15 scored rows")
    fig.colorbar(im, ax=ax, label="score drop when the feature alone is made typical (nats)")
    out["top_contributions"] = figure_png(fig)
    return out


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:right}
th{background:#f3f5f8}td:first-child,th:first-child{text-align:left}.grid{display:flex;flex-wrap:wrap;gap:1rem}
.grid img{max-width:100%;border:1px solid #eee}.muted{color:#666;font-size:.9rem}
</style></head><body>
<h1>{{ title }}</h1>
<p class="muted">Model <code>{{ model_dir }}</code> (fraudvae {{ version }}, kind {{ kind }}, score <code>{{ scoring }}</code>) on
<code>{{ data }}</code>: {{ m.n_rows }} rows, {{ m.n_fraud }} fraud ({{ '%.2f'|format(100 * m.n_fraud / m.n_rows) }}%). {{ note }}</p>

<h2>At the calibrated threshold ({{ '%.4g'|format(m.threshold) }})</h2>
<table><tr><th>precision</th><th>recall</th><th>F1</th><th>false-positive rate</th><th>alert rate</th></tr>
<tr><td>{{ '%.3f'|format(m.at_threshold.precision) }}</td><td>{{ '%.3f'|format(m.at_threshold.recall) }}</td>
<td>{{ '%.3f'|format(m.at_threshold.f1) }}</td><td>{{ '%.4f'|format(m.at_threshold.false_positive_rate) }}</td>
<td>{{ '%.4f'|format(m.at_threshold.alert_rate) }}</td></tr></table>
<table><tr><th>confusion matrix</th><th>flagged</th><th>not flagged</th></tr>
<tr><td>fraud</td><td>{{ m.at_threshold.confusion_matrix.tp }}</td><td>{{ m.at_threshold.confusion_matrix.fn }}</td></tr>
<tr><td>normal</td><td>{{ m.at_threshold.confusion_matrix.fp }}</td><td>{{ m.at_threshold.confusion_matrix.tn }}</td></tr></table>

<h2>Threshold-free and operating points</h2>
<table><tr><th>AUROC</th><th>AUPRC</th>{% for f in m.recall_at_fpr %}<th>recall @ FPR {{ '%g'|format(100 * f|float) }}%</th>{% endfor %}
{% for k in m.precision_at_k %}<th>precision@{{ k }}</th>{% endfor %}</tr>
<tr><td>{{ fmt(m.auroc) }}</td><td>{{ fmt(m.auprc) }}</td>{% for v in m.recall_at_fpr.values() %}<td>{{ fmt(v) }}</td>{% endfor %}
{% for v in m.precision_at_k.values() %}<td>{{ fmt(v) }}</td>{% endfor %}</tr></table>

<div class="grid">
<img src="{{ plots.pr_curve }}" alt="Precision-recall curve with the operating point">
<img src="{{ plots.roc_curve }}" alt="ROC curve with the operating point">
<img src="{{ plots.score_histogram }}" alt="Score histograms of normal and fraud rows with the threshold">
<img src="{{ plots.latent_space }}" alt="Two-dimensional view of the latent space coloured by label">
<img src="{{ plots.top_contributions }}" alt="Attribution of the top features of the top flagged rows">
</div>
<p class="muted">Features are ranked by <b>attribution</b> everywhere in this report (the heatmap and the table
below): how much a row's score falls when that feature alone is set to what the model expected.</p>

{% if column_roles %}<h2>Columns not modelled as given</h2>
<table><tr><th>column</th><th>treatment</th><th>why</th></tr>
{% for name, role in column_roles.items() %}<tr><td>{{ name }}</td><td>{{ role.encoding }}</td><td style="text-align:left">{{ role.reason }}</td></tr>{% endfor %}
</table><p class="muted">Chosen at training from each column's shape; override with <code>--column-types NAME=KIND</code>.</p>{% endif %}

<h2>What the VAE buys: the same split, other detectors</h2>
{% if comparison %}
<table><tr><th>detector</th><th>AUROC</th><th>AUPRC</th><th>fit s</th></tr>
{% for row in comparison %}<tr><td>{{ row.method }}</td><td>{{ fmt(row.auroc) }}</td><td>{{ fmt(row.auprc) }}</td><td>{{ '%.1f'|format(row.fit_s) }}</td></tr>{% endfor %}
</table><p class="muted">{{ comparison_note }}</p>
{% else %}<p class="muted">{{ comparison_note }}</p>{% endif %}

{% if feature_spec %}<h2>Behavioural features</h2>
<p>Computed point-in-time from each entity's earlier events (the spec stored with the model):</p>
<pre>{{ feature_spec_text }}</pre>
<table><tr><th>derived column</th><th>meaning</th><th>mean term of the score, fraud</th><th>normal</th></tr>
{% for d in derived_features %}<tr><td>{{ d.feature }}</td><td style="text-align:left">{{ d.description }}</td>{% if d.modelled %}<td>{{ fmt(d.mean_contribution_fraud) }}</td><td>{{ fmt(d.mean_contribution_normal) }}</td>{% else %}<td colspan="2">not modelled</td>{% endif %}</tr>{% endfor %}
</table><p class="muted">A feature's term is its part of the anomaly score (they sum to the score); the row "raw columns only" in the table above is the same model without the spec, on the same split.</p>{% endif %}

<h2>Top flagged rows and why</h2>
<table><tr><th>row</th>{% for k in key_columns %}<th>{{ k }}</th>{% endfor %}<th>label</th><th>score</th><th>p-value</th><th>top features by attribution (value, expected, attribution)</th></tr>
{% for r in top_rows %}<tr><td>{{ r.row }}</td>{% for k in key_columns %}<td>{{ r.keys[k] }}</td>{% endfor %}<td>{{ 'fraud' if r.label else 'normal' }}</td><td>{{ '%.4g'|format(r.score) }}</td>
<td>{{ '%.2g'|format(r.p_value) }}</td><td style="text-align:left">{% for f in r.features %}<b>{{ f.description }}</b> = {{ f.value }} (expected {{ f.expected }}, {{ '%.3g'|format(f.attribution) }}){% if not loop.last %}; {% endif %}{% endfor %}</td></tr>{% endfor %}
</table>
</body></html>
"""


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def _row(result: Any, i: int) -> dict[str, Any]:
    """A scored row's values by feature name (what a description may quote)."""
    return {name: values[i] for name, values in result.values.items()}


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def write_report(
    out_dir: str | Path,
    *,
    y: np.ndarray,
    result: ScoreResult,
    metrics: dict[str, Any],
    meta: dict[str, Any],
    comparison: list[dict[str, Any]] | None,
    comparison_note: str,
    keys: pd.DataFrame | None = None,
) -> Path:
    """Write ``report.json``, ``report.html`` and ``scores.csv`` into ``out_dir`` (each atomically).

    ``keys`` (one row per scored row, e.g. a transaction id) is copied into ``scores.csv``
    and the top-rows table, so results can be joined back to the input.
    """
    keys = keys.reset_index(drop=True) if keys is not None else pd.DataFrame(index=range(len(y)))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    top = np.argsort(-result.anomaly_score, kind="stable")[:20]
    features = result.top_features(3)
    top_rows = [
        {
            "row": int(i),
            "keys": {str(k): _short(_plain(keys[k].iloc[i])) for k in keys.columns},
            "label": int(y[i]),
            "score": float(result.anomaly_score[i]),
            "p_value": float(result.p_value[i]),
            "features": [
                {
                    **f,
                    "description": describe_feature(f["feature"], _row(result, int(i))),
                    "value": _short(f["value"]),
                    "expected": _short(f["expected"]),
                }
                for f in features[i]
            ],
        }
        for i in top
    ]
    document = {**meta, "metrics": metrics, "comparison": comparison, "top_rows": top_rows}
    env = Environment(autoescape=select_autoescape(default=True))
    html = env.from_string(_TEMPLATE).render(
        title=meta.get("title", "fraudvae evaluation report"),
        m=metrics,
        plots=_plots(y, result, metrics),
        comparison=comparison,
        comparison_note=comparison_note,
        top_rows=top_rows,
        key_columns=[str(k) for k in keys.columns],
        column_roles=meta.get("column_roles", {}),
        feature_spec=meta.get("feature_spec"),
        feature_spec_text=json.dumps(meta.get("feature_spec"), indent=1),
        derived_features=meta.get("derived_features", []),
        fmt=_fmt,
        **{k: meta.get(k, "") for k in ("model_dir", "version", "kind", "scoring", "data", "note")},
    )
    scores = pd.DataFrame(
        {
            "row": np.arange(len(y)),
            **{str(k): keys[k].to_numpy() for k in keys.columns},
            "label": y.astype(int),
            **score_columns(result, 0),
        }
    )
    for name, content in (("report.json", json.dumps(document, indent=1, default=float)), ("report.html", html)):
        tmp = atomic_path(out / name)
        tmp.write_text(content)
        tmp.replace(out / name)
    tmp = atomic_path(out / "scores.csv")
    scores.to_csv(tmp, index=False, float_format="%.17g")
    tmp.replace(out / "scores.csv")
    return out
