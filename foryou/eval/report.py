"""The evaluation report: `metrics.json` and a self-contained `index.html` (tables and PNG plots embedded
as base64), both rendered from the one result dict so that they always agree. Every number cell carries
`data-method`, `data-metric` and `data-value` attributes (a test reads them back against the JSON)."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

RANKING_ORDER = ("ndcg", "precision", "recall", "hit_rate")
COLORS = {"foryou": "#1d9bf0"}
GREY = "#8b98a5"


def write_report(result: dict[str, Any], out: str | Path) -> tuple[Path, Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, default=_json_default, allow_nan=True)
    (out / "metrics.json").write_text(text)
    (out / "index.html").write_text(render_html(json.loads(text)))
    return out / "metrics.json", out / "index.html"


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(type(v))


def fmt(v: Any) -> str:
    """How every number appears in the HTML (the agreement test uses the same function)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:,.1f}"
    return html.escape(str(v))


def _cell(method: str, metric: str, v: Any) -> str:
    if isinstance(v, dict) and "mean" in v:
        return (f'<td data-method="{method}" data-metric="{metric}" data-value="{v["mean"]!r}" '
                f'data-lo="{v["lo"]!r}" data-hi="{v["hi"]!r}">{fmt(v["mean"])}'
                f'<span class="ci"> [{fmt(v["lo"])}, {fmt(v["hi"])}]</span></td>')
    return f'<td data-method="{method}" data-metric="{metric}" data-value="{v!r}">{fmt(v)}</td>'


def _table(rows: dict[str, dict[str, Any]], columns: list[str], prefix: str, label: str = "method") -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for name, row in rows.items():
        cls = ' class="ours"' if name == "foryou" else ""
        cells = "".join(_cell(name, f"{prefix}{c}", row.get(c)) for c in columns)
        body.append(f"<tr{cls}><th>{html.escape(name)}</th>{cells}</tr>")
    return f'<table><tr><th>{label}</th>{head}</tr>{"".join(body)}</table>'


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _bars(methods: dict[str, dict[str, float]], title: str) -> str:
    names = list(methods)
    mean = np.array([methods[n]["mean"] for n in names], dtype=float)
    lo = np.array([methods[n]["lo"] for n in names], dtype=float)
    hi = np.array([methods[n]["hi"] for n in names], dtype=float)
    fig = Figure(figsize=(max(4.2, 0.5 * len(names) + 1.5), 3.2), layout="constrained")
    ax = fig.subplots()
    ax.bar(range(len(names)), mean, yerr=np.vstack([mean - lo, hi - mean]), capsize=3,
           color=[COLORS.get(n, GREY) for n in names])
    ax.set_title(title, fontsize=10)
    ax.set_xticks(range(len(names)), names, rotation=40, ha="right", fontsize=8)  # long names must not overlap
    return _png(fig)


def _ranking_section(r: dict[str, Any]) -> str:
    ks = r["k_values"]
    cols = [f"{m}@{k}" for m in RANKING_ORDER for k in ks] + ["mrr"]
    rows = {name: m["ranking"] for name, m in r["methods"].items()}
    k_mid = 10 if 10 in ks else ks[0]
    plots = "".join(_bars({n: rows[n][c] for n in rows}, c + " (95 % CI)")
                    for c in (f"ndcg@{k_mid}", f"recall@{ks[-1]}", f"hit_rate@{k_mid}", "mrr"))
    return (f"<h2>Ranking (mean over users, bootstrap 95 % interval)</h2>{_table(rows, cols, 'ranking.')}"
            f'<div class="plots">{plots}</div>')


def _engagement_section(r: dict[str, Any]) -> str:
    cols = ["rows", "positives", "auc", "pr_auc", "precision@recall0.9", "rce", "ece", "mean_predicted",
            "mean_observed"]
    rows = {n: m["engagement"] for n, m in r["methods"].items()}
    return ("<h2>Engagement prediction on each method's own list</h2><p>Label: the listed post is in the user's "
            "ground truth; score: our P(engaged) (1 − Π(1 − p) over the positive heads) or the baseline's score. "
            "RCE and calibration only for probabilities.</p>" + _table(rows, cols, "engagement."))


def _beyond_section(r: dict[str, Any]) -> str:
    cols = ["catalog_coverage", "author_gini", "intra_list_diversity", "novelty", "mean_list_length"]
    rows = {n: m["beyond"] for n, m in r["methods"].items()}
    return ("<h2>Beyond accuracy</h2><p>Coverage = share of the catalog listed to anyone; author Gini over list "
            "slots (every catalog author, zeros included); intra-list diversity = share of pairs with different "
            "topics; novelty = mean −log2 P(a user engaged with the post before the split).</p>"
            + _table(rows, cols, "beyond."))


def _oracle_section(r: dict[str, Any]) -> str:
    o = r.get("oracle")
    if not o:
        return ""
    rows = {n: {"ratio": m["ratio"], "served_per_user": m["served_per_user"], "oracle_per_user": m["oracle_per_user"],
                "mean_length": m["mean_length"]} for n, m in o["methods"].items()}
    plot = _bars({n: rows[n]["ratio"] for n in rows}, "expected utility ÷ oracle (95 % CI)")
    return (f"<h2>Against the oracle (ground truth)</h2><p>{html.escape(o['what'])}. Our engine had "
            f"{fmt(o['candidates_per_user'])} candidates per user before selection; <code>best_own_candidates</code> "
            "is the best page of the same length from them and <code>ranked_own_candidates</code> the heavy "
            "ranker's top ones by predicted utility (before rescoring, diversity and mixing); each "
            "<code>oracle_blind_to_X</code> picks from every eligible post by the truth without latent X (scored "
            "by the full truth): what is achievable without knowing X.</p>"
            + _table(rows, ["ratio", "served_per_user", "oracle_per_user", "mean_length"], "oracle.")
            + f'<div class="plots">{plot}</div>')


def _sources_section(r: dict[str, Any]) -> str:
    s = r["sources"]
    if not s:
        return ""
    names = list(s)
    fig = Figure(figsize=(5.5, 2.8))
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x - 0.2, [s[n]["share_of_served"] for n in names], 0.4, label="share of slots", color=GREY)
    ax.bar(x + 0.2, [s[n]["share_of_hits"] for n in names], 0.4, label="share of hits", color=COLORS["foryou"])
    ax.set_xticks(x, names, rotation=45, fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("our pages by candidate source", fontsize=10)
    cols = ["served", "hits", "precision", "share_of_served", "share_of_hits", "hits@10"]
    return ("<h2>Per-source contribution (our pages)</h2>" + _table(s, cols, "sources.", "source")
            + f'<div class="plots">{_png(fig)}</div>')


def _retrieval_section(r: dict[str, Any]) -> str:
    rt = r.get("retrieval")
    if not rt:
        return ""
    s = rt["stages"]
    names = list(s)
    mean = np.array([s[n]["recall"]["mean"] for n in names], dtype=float)
    lo = np.array([s[n]["recall"]["lo"] for n in names], dtype=float)
    hi = np.array([s[n]["recall"]["hi"] for n in names], dtype=float)
    fig = Figure(figsize=(5.5, 2.8))
    ax = fig.subplots()
    stage = [n in ("merged", "after_filters", "page") for n in names]
    ax.bar(names, np.nan_to_num(mean), yerr=np.nan_to_num(np.vstack([mean - lo, hi - mean])), capsize=3,
           color=[COLORS["foryou"] if st else GREY for st in stage])
    for i, n in enumerate(names):
        ax.annotate(f"K={s[n]['candidates_per_user']:g}", (i, np.nan_to_num(mean[i])), ha="center", va="bottom",
                    fontsize=6, xytext=(0, 2), textcoords="offset points")
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    ax.set_title("retrieval recall@K by stage (95 % CI)", fontsize=10)
    cols = ["candidates_per_user", "recall", "recall_pooled", "hits", "users_with_candidates"]
    return (f"<h2>Retrieval recall</h2><p>{html.escape(rt['what'])}.</p>" + _table(s, cols, "retrieval.", "stage")
            + f'<div class="plots">{_png(fig)}</div>')


def _calibration_section(r: dict[str, Any]) -> str:
    c = r["calibration"]
    plots = []
    for group, curves in c.items():
        fig = Figure(figsize=(4.2, 3.2))
        ax = fig.subplots()
        top = 0.0
        for name, cur in curves.items():
            ax.plot(cur["predicted"], cur["observed"], marker="o", ms=3, label=name)
            top = max([top, *cur["predicted"], *cur["observed"]])
        ax.plot([0, top], [0, top], color="k", lw=0.6, ls="--")
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true probability" if group == "truth" else "observed in test window", fontsize=8)
        ax.set_title(f"calibration vs {group}", fontsize=10)
        ax.legend(fontsize=7)
        plots.append(_png(fig))
    ece = {h: {"ece": v["ece"]} for h, v in c.get("truth", {}).items()}
    note = ("<p>Against the truth: each served item's predicted probability per head vs the world's true probability "
            "for the same (user, post, time) — calibration without the logging policy's bias. Observed: predicted "
            "P(engaged) vs whether the user engaged in the test window, which also needs the logging policy to have "
            "shown the post, so it sits far below the diagonal by construction.</p>")
    return ("<h2>Calibration</h2>" + note + (_table(ece, ["ece"], "calibration.truth.", "head") if ece else "")
            + f'<div class="plots">{"".join(plots)}</div>')


def _score_section(r: dict[str, Any]) -> str:
    d = r["score_distribution"]
    edges = np.array(d["edges"])
    fig = Figure(figsize=(5.0, 2.8))
    ax = fig.subplots()
    for key, color in (("not_engaged", GREY), ("engaged", COLORS["foryou"])):
        counts = np.array(d[key], dtype=float)
        share = counts / max(counts.sum(), 1)
        ax.stairs(share, edges, label=f"{key} ({int(counts.sum()):,})", color=color, fill=key == "not_engaged",
                  alpha=0.6 if key == "not_engaged" else 1.0, lw=1.5)
    ax.set_xscale("log")
    ax.set_xlabel("predicted P(engaged)", fontsize=8)
    ax.set_ylabel("share of items", fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("score distribution of our served items", fontsize=10)
    return f"<h2>Score distributions</h2><p>{html.escape(d['what'])}.</p><div class=\"plots\">{_png(fig)}</div>"


def _heads_section(r: dict[str, Any]) -> str:
    h = r.get("heads", {})
    parts = []
    reg = h.get("registry") or {}
    if reg.get("per_head"):
        parts.append(f"<p>Heavy ranker v{reg['version']} on the test window's logged impressions (from the registry "
                     "manifest); ceiling = AUC of the true probabilities on the same rows.</p>"
                     + _table(reg["per_head"], ["auc", "ceiling_auc", "rce", "ece"], "heads.registry.", "head"))
    if h.get("served"):
        parts.append("<p>On our served items: label = the user did that action on the post in the test window.</p>"
                     + _table(h["served"], ["positives", "auc", "truth_auc"], "heads.served.", "head"))
    return "<h2>Per-head AUC vs the ground truth</h2>" + "".join(parts) if parts else ""


def _targets_section(r: dict[str, Any]) -> str:
    t = r.get("targets", {})
    rows = "".join(f'<tr><th>{html.escape(k)}</th>{_cell("targets", k, v)}</tr>' for k, v in t.items())
    return f"<h2>Targets</h2><table>{rows}</table>" if rows else ""


CSS = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1280px;color:#0f1419}
table{border-collapse:collapse;margin:8px 0 16px;font-size:12px}td,th{border:1px solid #cfd9de;padding:3px 6px;
text-align:right}th{background:#f7f9f9}tr.ours td{background:#e8f5fd;font-weight:600}.ci{color:#536471;
font-weight:400;font-size:11px}.plots{display:flex;flex-wrap:wrap;gap:12px}code{background:#f7f9f9}
h2{margin-top:28px;border-bottom:1px solid #cfd9de}"""


def render_html(r: dict[str, Any]) -> str:
    info = {"dataset": r["dataset"], "protocol": r["protocol"], "date": r["date"], "split instant (as_of)": r["as_of"],
            "evaluated users": r["users"], "relevant (user, post) pairs": r["relevant_pairs"],
            "catalog (candidates every method ranks)": r["catalog_size"], "page size": r["page_size"],
            "positive kinds": ", ".join(r["positive_kinds"]), "bootstrap resamples": r["bootstrap_reps"]}
    info_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{fmt(v)}</td></tr>" for k, v in info.items())
    models = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(str(v))}</li>" for k, v in r["models"].items())
    overrides = ", ".join(f"<code>{html.escape(k)}={html.escape(json.dumps(v))}</code>"
                          for k, v in r["config_overrides"].items()) or "none"
    errors = [f"engine error: {e}" for e in r["engine_errors"]]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in r["notes"] + errors)
    seconds = "".join(f"<tr><th>{html.escape(k)}</th><td>{fmt(float(v))} s</td></tr>" for k, v in r["seconds"].items())
    payload = json.dumps(r).replace("</", "<\\/")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>foryou eval · {html.escape(r['dataset_name'])}
· {html.escape(r['protocol'])}</title><style>{CSS}</style></head><body>
<h1>foryou offline evaluation — {html.escape(r['dataset_name'])} ({html.escape(r['protocol'])})</h1>
<table>{info_rows}</table><p>Config overrides: {overrides}</p><p>Models served:</p><ul>{models}</ul>
<ul>{notes}</ul>
{_targets_section(r)}{_ranking_section(r)}{_oracle_section(r)}{_sources_section(r)}{_retrieval_section(r)}
{_engagement_section(r)}
{_beyond_section(r)}{_calibration_section(r)}{_score_section(r)}{_heads_section(r)}
<h2>Time</h2><table>{seconds}</table>
<script type="application/json" id="metrics">{payload}</script>
</body></html>"""
