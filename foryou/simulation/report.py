"""The simulation's HTML report: per-arm daily plots (matplotlib, embedded PNG), the experiment's
significance table, exposure and drift. One self-contained file."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from foryou.simulation.runner import SimulationResult

PLOTS = (("engagement_rate", "engagement per impression"),
         ("expected_utility", "expected utility per impression (truth Σ w·p)"),
         ("realised_utility", "realised utility per impression (actions × w)"),
         ("regret", "regret per slot vs oracle"), ("cumulative_regret", "cumulative regret (per slot, summed)"),
         ("negative_rate", "negative feedback per impression"), ("session_depth", "posts viewed per session"),
         ("topic_diversity", "distinct topics per page"), ("creator_gini", "creator-exposure Gini"),
         ("out_of_network_share", "out-of-network share"), ("new_post_share", "share of new posts viewed"),
         ("topic_entropy_seen", "topic entropy of viewed posts"), ("topic_kl", "KL(viewed topics ‖ interests)"),
         ("new_post_regret", "regret per new-post slot"), ("cumulative_new_post_regret", "cumulative new-post regret"))


def _figure(result: SimulationResult) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(PLOTS) // 4)
    fig, axes = plt.subplots(rows, 4, figsize=(16, 3.3 * rows))
    days = np.arange(1, result.days + 1)
    for ax in axes.ravel()[len(PLOTS):]:
        ax.set_visible(False)
    for ax, (key, title) in zip(axes.ravel(), PLOTS, strict=False):
        for arm in result.arms:
            ax.plot(days, result.daily[arm][key], marker="o", ms=3, label=arm)
        if key == "topic_entropy_seen" and result.arms:
            ax.plot(days, result.daily[result.arms[0]]["topic_entropy_interest"], "k--", lw=1, label="interests")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("day", fontsize=8)
        ax.tick_params(labelsize=8)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "—" if not np.isfinite(v) else (f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}")
    return html.escape(str(v))


def _metric(name: Any) -> str:
    """An experiment metric as this report names it: the experiments' "utility" is the realised one
    (X's weights on the actions taken), not the expected utility plotted above."""
    return "realised_utility" if name == "utility" else str(name)


def _named(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "metric": _metric(r.get("metric"))} for r in rows]


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_report(result: SimulationResult, path: str | Path, title: str = "foryou simulation") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"<h1>{html.escape(title)}</h1>",
             "<p>" + ", ".join(f"{k}: {_fmt(v)}" for k, v in result.summary.items()
                               if k not in ("engine_models", "behaviour")) + "</p>",
             f"<p>models: {_fmt(result.summary.get('engine_models'))}; behaviour: "
             f"{_fmt(result.summary.get('behaviour'))}</p>",
             f'<img src="data:image/png;base64,{_figure(result)}" style="max-width:100%">']
    totals = []
    for arm in result.arms:
        d = result.daily[arm]
        imp = np.asarray(d["impressions"])
        w = imp / max(imp.sum(), 1)
        totals.append({"arm": arm, "sessions": int(sum(d["sessions"])), "impressions": int(imp.sum()),
                       **{k: float(np.dot(w, d[k])) for k in ("engagement_rate", "expected_utility",
                                                              "realised_utility", "negative_rate",
                                                              "session_depth", "out_of_network_share")},
                       "regret (mean/day)": float(np.mean(d["regret"])),
                       "cumulative regret": d["cumulative_regret"][-1],
                       "creator Gini": float(np.mean(d["creator_gini"])),
                       "topic entropy seen": float(np.mean(d["topic_entropy_seen"])),
                       "interest entropy": float(np.mean(d["topic_entropy_interest"]))})
    parts += ["<h2>Per arm, whole run</h2>", _table(totals, list(totals[0]))] if totals else []
    reg = result.regret
    if reg.get("arms"):
        rows = [{"arm": arm, "users": r["users"], **{f"{name} {k}": r[name][k] for name in ("regret", "new_post_regret")
                                                   for k in ("cumulative", "low", "high", "slots")}}
                for arm, r in reg["arms"].items()]
        rows += [{"arm": f"{arm} − {result.arms[0]}", **{f"{name} {k2}": d[name][k1] for name in d
                                                          for k1, k2 in (("diff", "cumulative"), ("low", "low"),
                                                                         ("high", "high"))}}
                 for arm, d in reg["vs_control"].items()]
        parts += ["<h2>Cumulative regret against the oracle (sum over days of the per-slot regret), 95 % "
                  f"intervals from resampling users ({reg['resamples']} resamples)</h2>",
                  _table(rows, list(rows[0]))]
    exp = result.experiment
    if exp:
        srm = exp["srm"]
        parts += [f"<h2>Experiment {html.escape(exp['experiment'])}: significance (control = "
                  f"{html.escape(exp['control'])}, primary metric = {_metric(exp['primary_metric'])}, "
                  f"α = {exp['alpha']})</h2>",
                  f"<p>Decision on the primary metric: {_fmt(exp['decision'])}. Sample ratio: observed "
                  f"{srm.get('observed')} vs expected {srm.get('expected')}, χ² p = {_fmt(srm['p'])} — "
                  f"{'<b>MISMATCH: do not trust these results</b>' if srm['mismatch'] else 'no mismatch'}.</p>",
                  _table(_named(exp["comparisons"]), ["arm", "metric", "control", "treatment", "diff", "ci_low",
                                                      "ci_high", "lift", "lift_low", "lift_high", "p", "significant",
                                                      "mde", "mde_relative"]),
                  "<p>Per-user metrics, Welch's t-test. Impression-level z-tests below are descriptive "
                  "(impressions of one user are correlated, so their p-values are optimistic).</p>",
                  _table(_named(exp["proportions"]), ["arm", "metric", "control", "treatment", "diff", "ci_low",
                                                      "ci_high", "lift", "z", "p", "significant"])]
    last = next((d for d in reversed(result.drift) if d.get("features")), None)
    if last:
        rows = [{"kind": kind, "name": k, **v} for kind in ("features", "predictions")
                for k, v in last.get(kind, {}).items()]
        parts += [f"<h2>Drift on day {last['day']} (features vs training impressions; predictions vs day 1)</h2>",
                  _table(rows, ["kind", "name", "psi", "ks", "ks_p", "level", "reference_mean", "live_mean"])]
    style = ("<style>body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:right}"
             "th{background:#f4f4f4}</style>")
    path.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{style}"
                    f"</head><body>{''.join(parts)}</body></html>\n")
    return path


def write_json(result: SimulationResult, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps({"summary": result.summary, "arms": result.arms, "daily": result.daily,
                                "regret": result.regret,
                                "experiment": result.experiment, "drift": result.drift},
                               default=lambda o: o.item() if hasattr(o, "item") else str(o), indent=1) + "\n")
    return path
