"""The simulation's HTML report: per-arm daily plots (matplotlib, embedded PNG), the experiment's
significance table, exposure and drift. One self-contained file (template `simulation.html.j2` of
foryou.reports)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from foryou.reports import render
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


def fmt(v: Any) -> str:
    """A value as the page shows it (as text: the page escapes it)."""
    if isinstance(v, float):
        return "—" if not np.isfinite(v) else (f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}")
    return str(v)


def _metric(name: Any) -> str:
    """An experiment metric as this report names it: the experiments' "utility" is the realised one
    (X's weights on the actions taken), not the expected utility plotted above."""
    return "realised_utility" if name == "utility" else str(name)


def _named(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "metric": _metric(r.get("metric"))} for r in rows]


def _totals(result: SimulationResult) -> list[dict[str, Any]]:
    """Per arm over the whole run: rates weighted by each day's impressions."""
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
    return totals


def _regret_rows(result: SimulationResult) -> list[dict[str, Any]]:
    """Cumulative regret per arm with its interval, then each arm's difference from the control."""
    reg = result.regret
    if not reg.get("arms"):
        return []
    rows = [{"arm": arm, "users": r["users"], **{f"{name} {k}": r[name][k] for name in ("regret", "new_post_regret")
                                               for k in ("cumulative", "low", "high", "slots")}}
            for arm, r in reg["arms"].items()]
    rows += [{"arm": f"{arm} − {result.arms[0]}", **{f"{name} {k2}": d[name][k1] for name in d
                                                      for k1, k2 in (("diff", "cumulative"), ("low", "low"),
                                                                     ("high", "high"))}}
             for arm, d in reg["vs_control"].items()]
    return rows


def _drift_rows(result: SimulationResult) -> tuple[int | None, list[dict[str, Any]]]:
    """The last day with a feature-drift check: (day, a row per feature and head)."""
    last = next((d for d in reversed(result.drift) if d.get("features")), None)
    if not last:
        return None, []
    return last["day"], [{"kind": kind, "name": k, **v} for kind in ("features", "predictions")
                         for k, v in last.get(kind, {}).items()]


def write_report(result: SimulationResult, path: str | Path, title: str = "foryou simulation") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    exp = result.experiment
    drift_day, drift = _drift_rows(result)
    page = render(
        "simulation.html.j2", title=title, fmt=fmt, figure=_figure(result),
        summary={k: v for k, v in result.summary.items() if k not in ("engine_models", "behaviour")},
        models=result.summary.get("engine_models"), behaviour=result.summary.get("behaviour"),
        totals=_totals(result), regret=_regret_rows(result), resamples=result.regret.get("resamples"),
        experiment=exp, primary_metric=_metric(exp["primary_metric"]) if exp else None,
        comparisons=_named(exp["comparisons"]) if exp else [], proportions=_named(exp["proportions"]) if exp else [],
        drift_day=drift_day, drift=drift)
    path.write_text(page)
    return path


def write_json(result: SimulationResult, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps({"summary": result.summary, "arms": result.arms, "daily": result.daily,
                                "regret": result.regret,
                                "experiment": result.experiment, "drift": result.drift},
                               default=lambda o: o.item() if hasattr(o, "item") else str(o), indent=1) + "\n")
    return path
