"""Per-arm analysis: the randomisation unit is the user, so each metric is a per-user value (the
user's engagement per impression, realised utility per impression — the metric named "utility" —,
negative feedback per impression, impressions per session), compared with Welch's t-test (scipy).
Impression-level rates also get the two-proportion z-test (descriptive: impressions of one user are
correlated, so it is optimistic).
Plus 95 % intervals, relative lift (delta method), the minimum detectable effect at 80 % power and
a sample-ratio-mismatch check (χ² goodness of fit of users per arm against the arms' weights)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from foryou.config import EngagementWeights
from foryou.experiments.definition import METRICS, Experiment
from foryou.experiments.store import ExperimentLog
from foryou.vocab import NEGATIVE, POSITIVE

ALPHA = 0.05
SRM_ALPHA = 0.001  # the usual SRM threshold: a mismatch this unlikely means broken assignment or logging
POWER = 0.8


def event_utility(weights: EngagementWeights | None = None) -> dict[str, float]:
    """Realised utility of one event of each kind under X's weights (any of not-interested / mute /
    block counts as negative feedback; a dwell event is a dwell over the threshold)."""
    w = weights or EngagementWeights()
    return {"like": w.like, "repost": w.repost, "reply": w.reply, "profile_click": w.profile_click,
            "click": w.click, "dwell": w.dwell, "follow_author": w.follow_author,
            "not_interested": w.negative_feedback, "mute": w.negative_feedback, "block": w.negative_feedback,
            "report": w.report}


@dataclass
class UserTable:
    """One row per exposed user: arm index, sessions, impressions, positives, negatives and realised
    utility (X's weights summed over the actions the user took: `event_utility`)."""

    arm: np.ndarray
    sessions: np.ndarray
    impressions: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray
    realised_utility: np.ndarray

    def metric(self, name: str) -> np.ndarray:
        """A per-user metric of METRICS; "utility" is the realised utility per impression."""
        imp = np.maximum(self.impressions, 1)
        return {"utility": self.realised_utility / imp, "engagement_rate": self.positives / imp,
                "negative_rate": self.negatives / imp,
                "session_depth": self.impressions / np.maximum(self.sessions, 1)}[name]

    def subset(self, mask: np.ndarray) -> UserTable:
        return UserTable(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))


def user_table(log: ExperimentLog, experiment: Experiment, weights: EngagementWeights | None = None) -> UserTable:
    """Per-user outcomes from the log: events of a user from their first exposure on count for the
    arm they were assigned (served posts stand in for impressions when a client sends none)."""
    util = event_utility(weights)
    case = " ".join(f"WHEN '{k}' THEN {v!r}" for k, v in util.items())
    pos = ", ".join(f"'{k}'" for k in POSITIVE)
    neg = ", ".join(f"'{k}'" for k in NEGATIVE)
    rows = log.query(f"""
        WITH x AS (SELECT user_id, arm, MIN(t) AS t0, COUNT(DISTINCT session_id) AS sessions, SUM(items) AS served
                   FROM exposures WHERE experiment = ? GROUP BY user_id, arm)
        SELECT x.arm, x.sessions, x.served,
               COALESCE(SUM(e.kind = 'impression'), 0), COALESCE(SUM(e.kind IN ({pos})), 0),
               COALESCE(SUM(e.kind IN ({neg})), 0), COALESCE(SUM(CASE e.kind {case} ELSE 0 END), 0)
        FROM x LEFT JOIN events e ON e.user_id = x.user_id AND e.t >= x.t0
        GROUP BY x.user_id, x.arm""", (experiment.name,))
    index = {a.name: i for i, a in enumerate(experiment.arms)}
    rows = [r for r in rows if r[0] in index]
    col = lambda i, dt=np.float64: np.array([r[i] for r in rows], dtype=dt)  # noqa: E731
    served, shown = col(2), col(3)
    return UserTable(arm=np.array([index[r[0]] for r in rows], dtype=np.int64), sessions=col(1),
                     impressions=np.where(shown > 0, shown, served), positives=col(4), negatives=col(5),
                     realised_utility=col(6))


# -- tests ------------------------------------------------------------------------------------------


def welch(control: np.ndarray, treatment: np.ndarray, alpha: float = ALPHA) -> dict[str, float]:
    """Welch's t-test of mean(treatment) − mean(control) and its (1 − α) interval (scipy's
    `ttest_ind(equal_var=False)`), and the relative lift with a delta-method interval."""
    c, t = np.asarray(control, np.float64), np.asarray(treatment, np.float64)
    nc, nt = len(c), len(t)
    mc, mt = float(c.mean()) if nc else np.nan, float(t.mean()) if nt else np.nan
    vc = float(c.var(ddof=1)) / nc if nc > 1 else np.nan
    vt = float(t.var(ddof=1)) / nt if nt > 1 else np.nan
    diff, se = mt - mc, float(np.sqrt(vc + vt))
    if not np.isfinite(se) or se == 0:  # fewer than two users in an arm, or no variation: no test
        return {"control": mc, "treatment": mt, "diff": diff, "ci_low": np.nan, "ci_high": np.nan, "t": np.nan,
                "df": np.nan, "p": np.nan, "lift": diff / mc if mc else np.nan, "lift_low": np.nan,
                "lift_high": np.nan}
    test = stats.ttest_ind(t, c, equal_var=False)
    ci = test.confidence_interval(confidence_level=1 - alpha)
    out = {"control": mc, "treatment": mt, "diff": diff, "ci_low": float(ci.low), "ci_high": float(ci.high),
           "t": float(test.statistic), "df": float(test.df), "p": float(test.pvalue)}
    if mc != 0:  # the lift's interval: the delta method with the test's own t quantile
        q = float(stats.t.ppf(1 - alpha / 2, test.df))
        lift = mt / mc - 1
        se_lift = float(np.sqrt(vt / mc**2 + mt**2 * vc / mc**4))
        out.update(lift=lift, lift_low=lift - q * se_lift, lift_high=lift + q * se_lift)
    else:
        out.update(lift=np.nan, lift_low=np.nan, lift_high=np.nan)
    return out


def two_proportion(x_control: float, n_control: float, x_treatment: float, n_treatment: float,
                   alpha: float = ALPHA) -> dict[str, float]:
    """Two-proportion z-test (pooled standard error for the test, unpooled for the interval)."""
    pc, pt = x_control / n_control, x_treatment / n_treatment
    pool = (x_control + x_treatment) / (n_control + n_treatment)
    se0 = np.sqrt(pool * (1 - pool) * (1 / n_control + 1 / n_treatment))
    z = (pt - pc) / se0 if se0 > 0 else np.nan
    p = float(2 * stats.norm.sf(abs(z))) if np.isfinite(z) else np.nan
    se = np.sqrt(pc * (1 - pc) / n_control + pt * (1 - pt) / n_treatment)
    q = float(stats.norm.ppf(1 - alpha / 2))
    return {"control": pc, "treatment": pt, "diff": pt - pc, "ci_low": pt - pc - q * se, "ci_high": pt - pc + q * se,
            "z": float(z), "p": p, "lift": pt / pc - 1 if pc else np.nan}


def sample_ratio(counts: np.ndarray, weights: np.ndarray) -> dict[str, Any]:
    """χ² goodness of fit of users per arm against the configured weights."""
    counts = np.asarray(counts, np.float64)
    total = counts.sum()
    if total == 0:
        return {"chi2": np.nan, "p": np.nan, "mismatch": False}
    expected = total * np.asarray(weights, np.float64) / np.sum(weights)
    chi2, p = stats.chisquare(counts, expected)
    return {"chi2": float(chi2), "p": float(p), "mismatch": bool(p < SRM_ALPHA),
            "observed": counts.astype(int).tolist(), "expected": expected.round(1).tolist()}


def minimum_detectable_effect(sd_control: float, n_control: int, sd_treatment: float, n_treatment: int,
                              alpha: float = ALPHA, power: float = POWER) -> float:
    """The absolute difference a two-sided test at α would detect with the given power."""
    if min(n_control, n_treatment) < 2:
        return float("nan")
    se = np.sqrt(sd_control**2 / n_control + sd_treatment**2 / n_treatment)
    return float((stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)) * se)


# -- the report --------------------------------------------------------------------------------------


def analyse(experiment: Experiment, table: UserTable, alpha: float = ALPHA) -> dict[str, Any]:
    """Everything `get_experiment_results` returns, from a per-user table."""
    arms = experiment.arms
    per_arm = []
    for i, arm in enumerate(arms):
        sub = table.subset(table.arm == i)
        entry: dict[str, Any] = {"arm": arm.name, "users": len(sub.arm), "sessions": int(sub.sessions.sum()),
                                 "impressions": int(sub.impressions.sum()), "positives": int(sub.positives.sum()),
                                 "negatives": int(sub.negatives.sum()), "overrides": arm.overrides, "metrics": {}}
        for m in METRICS:
            v = sub.metric(m)
            mean = float(v.mean()) if len(v) else float("nan")
            half = float(stats.t.ppf(1 - alpha / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 \
                else float("nan")
            entry["metrics"][m] = {"mean": mean, "ci_low": mean - half, "ci_high": mean + half,
                                   "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan")}
        per_arm.append(entry)
    control = table.subset(table.arm == 0)
    comparisons, proportions = [], []
    for i, arm in enumerate(arms[1:], start=1):
        treat = table.subset(table.arm == i)
        for m in METRICS:
            c, t = control.metric(m), treat.metric(m)
            r: dict[str, Any] = welch(c, t, alpha)
            mde = minimum_detectable_effect(float(c.std(ddof=1)) if len(c) > 1 else np.nan, len(c),
                                            float(t.std(ddof=1)) if len(t) > 1 else np.nan, len(t), alpha)
            r.update(arm=arm.name, metric=m, test="welch", primary=m == experiment.primary_metric,
                     significant=bool(np.isfinite(r["p"]) and r["p"] < alpha), mde=mde,
                     mde_relative=mde / abs(r["control"]) if r["control"] else float("nan"))
            comparisons.append(r)
        for m, col in (("engagement_rate", "positives"), ("negative_rate", "negatives")):
            nc, nt = control.impressions.sum(), treat.impressions.sum()
            if nc > 0 and nt > 0:
                r = dict(two_proportion(getattr(control, col).sum(), nc, getattr(treat, col).sum(), nt, alpha))
                r.update(arm=arm.name, metric=m, test="two-proportion z (impressions)",
                         significant=bool(np.isfinite(r["p"]) and r["p"] < alpha))
                proportions.append(r)
    srm = sample_ratio(np.bincount(table.arm, minlength=len(arms)), np.array([a.weight for a in arms]))
    decision = {c["arm"]: ("better" if c["diff"] > 0 else "worse") if c["significant"] else "no significant difference"
                for c in comparisons if c["primary"]}
    if experiment.primary_metric == "negative_rate":
        decision = {k: {"better": "worse", "worse": "better"}.get(v, v) for k, v in decision.items()}
    return {"experiment": experiment.name, "primary_metric": experiment.primary_metric, "alpha": alpha,
            "control": arms[0].name, "users": len(table.arm), "arms": per_arm, "comparisons": comparisons,
            "proportions": proportions, "srm": srm, "decision": decision}
