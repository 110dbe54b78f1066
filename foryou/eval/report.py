"""The evaluation report: `metrics.json` and a self-contained `index.html` (tables and PNG plots embedded
as base64; template `eval.html.j2` of foryou.reports), both rendered from the one result dict so that
they always agree. Every number cell carries `data-method`, `data-metric` and `data-value` attributes
(a test reads them back against the JSON)."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from foryou.reports import render

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
    """How every value appears in the HTML, as text (the page escapes it; the agreement test uses the
    same function)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 100 else f"{v:,.1f}"
    return str(v)


def render_html(r: dict[str, Any]) -> str:
    info = {"dataset": r["dataset"], "protocol": r["protocol"], "date": r["date"], "split instant (as_of)": r["as_of"],
            "evaluated users": r["users"], "relevant (user, post) pairs": r["relevant_pairs"],
            "catalog (candidates every method ranks)": r["catalog_size"], "page size": r["page_size"],
            "positive kinds": ", ".join(r["positive_kinds"]), "bootstrap resamples": r["bootstrap_reps"]}
    return render(
        "eval.html.j2", r=r, fmt=fmt, info=info, rows=_rows(r), ranking_cols=_ranking_cols(r["k_values"]),
        plots=_plots(r), segments=_segments(r), tuning=_tuning(r),
        overrides=[f"{k}={json.dumps(v)}" for k, v in r["config_overrides"].items()],
        notes=r["notes"] + [f"engine error: {e}" for e in r["engine_errors"]],
        # Inside <script> only "</" can end the element early; the JSON is otherwise inserted as is.
        payload=json.dumps(r).replace("</", "<\\/"))


def _segments(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per user segment with users: its ranking rows (a row per method) and our retrieval recall per stage."""
    return {seg: {"users": e["users"], "definition": e["definition"],
                  "rows": {name: m["ranking"] for name, m in e["methods"].items()},
                  "retrieval": {stage: {"recall": v} for stage, v in e.get("retrieval", {}).items()}}
            for seg, e in (r.get("segments") or {}).items() if e.get("methods")}


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={'all' if v is None else v}" for k, v in params.items()) or "defaults"


def _tuning(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per tuned baseline: the chosen grid point and every grid point's validation score."""
    out = {}
    for name, b in (r.get("baselines") or {}).items():
        t = b.get("tuning") or {}
        if t.get("validation"):
            out[name] = {"chosen": "chosen " + params_text(t["chosen"]),
                         "rows": {params_text(p["params"]): p for p in t["validation"]}}
    return out


def _ranking_cols(ks: list[int]) -> list[str]:
    return [f"{m}@{k}" for m in RANKING_ORDER for k in ks] + ["mrr"]


def _rows(r: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The tables read across the methods (a row per method), and the heads' calibration error."""
    out = {part: {name: m[part] for name, m in r["methods"].items()} for part in ("ranking", "engagement", "beyond")}
    out["ece"] = {h: {"ece": v["ece"]} for h, v in r["calibration"].get("truth", {}).items()}
    return out


def _plots(r: dict[str, Any]) -> dict[str, Any]:
    """Every figure of the page, as base64 PNG (an absent section: an absent key)."""
    ks, rows = r["k_values"], _rows(r)["ranking"]
    k_mid = 10 if 10 in ks else ks[0]
    out: dict[str, Any] = {
        "ranking": [_bars({n: rows[n][c] for n in rows}, c + " (95 % CI)")
                    for c in (f"ndcg@{k_mid}", f"recall@{ks[-1]}", f"hit_rate@{k_mid}", "mrr")],
        "calibration": [_calibration(group, curves) for group, curves in r["calibration"].items()],
        "scores": _scores(r["score_distribution"])}
    if r.get("oracle"):
        out["oracle"] = _bars({n: m["ratio"] for n, m in r["oracle"]["methods"].items()},
                              "expected utility ÷ oracle (95 % CI)")
    if r["sources"]:
        out["sources"] = _sources(r["sources"])
    if r.get("retrieval"):
        out["retrieval"] = _retrieval(r["retrieval"]["stages"])
    return out


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


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


def _sources(s: dict[str, dict[str, float]]) -> str:
    names = list(s)
    fig = Figure(figsize=(5.5, 2.8))
    ax = fig.subplots()
    x = np.arange(len(names))
    ax.bar(x - 0.2, [s[n]["share_of_served"] for n in names], 0.4, label="share of slots", color=GREY)
    ax.bar(x + 0.2, [s[n]["share_of_hits"] for n in names], 0.4, label="share of hits", color=COLORS["foryou"])
    ax.set_xticks(x, names, rotation=45, fontsize=8)
    ax.legend(fontsize=8)
    ax.set_title("our pages by candidate source", fontsize=10)
    return _png(fig)


def _retrieval(s: dict[str, dict[str, Any]]) -> str:
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
    return _png(fig)


def _calibration(group: str, curves: dict[str, dict[str, Any]]) -> str:
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
    return _png(fig)


def _scores(d: dict[str, Any]) -> str:
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
    return _png(fig)
