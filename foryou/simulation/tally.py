"""What the closed loop counts, per arm and day: sums (row `n_arms` holds the users outside the
experiment), per-user totals (the experiment's per-user table), per-user per-day regret (intervals by
resampling users), creator exposure and the topics each user viewed (filter-bubble measures). The
runner feeds it one session, page, viewed slice and action at a time; `daily` turns it into rates."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from foryou.config import MonitoringConfig
from foryou.experiments.analysis import UserTable
from foryou.monitoring.exposure import ExposureMonitor
from foryou.vocab import NEGATIVE, POSITIVE

DAY_METRICS = ("sessions", "pages", "impressions", "positives", "negatives", "clicks", "follows",
               "realised_utility", "expected_utility", "regret", "regret_pages", "oracle_utility", "out_of_network",
               "new_post_regret", "new_post_slots",
               "page_topics", "page_authors", "page_items", "new_post_impressions", "new_post_positives", "empty_pages")
# Per user over the run; realised utility = X's weights summed over the actions the user took.
USER_TOTALS = ("sessions", "impressions", "positives", "negatives", "realised_utility")
REGRET_SUMS = ("regret", "regret_pages", "new_post_regret", "new_post_slots")  # per user and day
BUBBLE = ("entropy_seen", "entropy_interest", "kl", "bubble_users")
BOOTSTRAP = 2000


class Tally:
    def __init__(self, n_arms: int, n_users: int, days: int, n_topics: int, followers: np.ndarray,
                 monitoring: MonitoringConfig | None = None):
        m = monitoring or MonitoringConfig()
        self.n_arms = n_arms
        self.sums = {k: np.zeros((n_arms + 1, days)) for k in DAY_METRICS}
        self.per_user = {k: np.zeros(n_users) for k in USER_TOTALS}
        self.regret_days = {k: np.zeros((n_users, days)) for k in REGRET_SUMS}
        self.bubble = {k: np.zeros((n_arms + 1, days)) for k in BUBBLE}
        self.exposure = [ExposureMonitor(followers, m.popular_top, m.tail_bottom) for _ in range(n_arms + 1)]
        self.exposure_daily: list[list[dict[str, float]]] = [[] for _ in range(n_arms)]
        self.topic_seen = np.zeros((n_users, n_topics))  # today's viewed posts per user and topic
        self.viewed: dict[int, list[int]] = defaultdict(list)  # post rows each user has viewed so far

    # -- as the loop runs ------------------------------------------------------------------------

    def new_day(self) -> None:
        self.topic_seen[:] = 0
        for m in self.exposure:
            m.reset()

    def session(self, a: int, d: int, u: int) -> None:
        self.sums["sessions"][a, d] += 1
        self.per_user["sessions"][u] += 1

    def empty_page(self, a: int, d: int) -> None:
        self.sums["pages"][a, d] += 1
        self.sums["empty_pages"][a, d] += 1

    def page(self, a: int, d: int, topic: np.ndarray, author: np.ndarray) -> None:
        """A served page, by its posts' topics and authors."""
        s = self.sums
        s["pages"][a, d] += 1
        s["page_items"][a, d] += len(topic)
        s["page_topics"][a, d] += len(np.unique(topic))
        s["page_authors"][a, d] += len(np.unique(author))

    def views(self, a: int, d: int, u: int, rows: np.ndarray, topic: np.ndarray, author: np.ndarray,
              in_network: np.ndarray, expected_utility: np.ndarray, new: np.ndarray, engaged: np.ndarray) -> None:
        """The posts of a page the user viewed: post rows, topics, authors, in-network flags, the truth's
        expected utility, whether each is new (created during the simulation) and got a positive action."""
        s, k = self.sums, len(rows)
        s["new_post_impressions"][a, d] += int(new.sum())
        s["new_post_positives"][a, d] += int((new & engaged).sum())
        s["impressions"][a, d] += k
        s["expected_utility"][a, d] += float(expected_utility.sum())
        s["out_of_network"][a, d] += int((~in_network).sum())
        self.per_user["impressions"][u] += k
        self.exposure[a].observe(author, in_network)
        np.add.at(self.topic_seen[u], np.maximum(topic, 0), 1)
        self.viewed[u].extend(rows.tolist())

    def action(self, a: int, d: int, u: int, kind: str, weight: float) -> None:
        """One action; `weight`: its realised utility under X's weights."""
        s, pu = self.sums, self.per_user
        pu["realised_utility"][u] += weight
        s["realised_utility"][a, d] += weight
        if kind in POSITIVE:
            pu["positives"][u] += 1
            s["positives"][a, d] += 1
        elif kind in NEGATIVE:
            pu["negatives"][u] += 1
            s["negatives"][a, d] += 1
        elif kind == "click":
            s["clicks"][a, d] += 1
        elif kind == "follow_author":
            s["follows"][a, d] += 1

    def regret(self, a: int, d: int, u: int, regret: float, oracle: float) -> None:
        """A first page scored against the oracle: its per-slot regret and the oracle's utility."""
        self.sums["regret"][a, d] += regret
        self.sums["oracle_utility"][a, d] += oracle
        self.sums["regret_pages"][a, d] += 1
        self.regret_days["regret"][u, d] += regret
        self.regret_days["regret_pages"][u, d] += 1

    def new_post_regret(self, a: int, d: int, u: int, loss: float, slots: int) -> None:
        """Regret summed over a page's `slots` new-post slots."""
        self.sums["new_post_regret"][a, d] += loss
        self.sums["new_post_slots"][a, d] += slots
        self.regret_days["new_post_regret"][u, d] += loss
        self.regret_days["new_post_slots"][u, d] += slots

    def end_day(self, d: int, arm_of: np.ndarray, interests: np.ndarray, interest_entropy: np.ndarray,
                eligible_authors: np.ndarray) -> None:
        """Today's creator exposure per arm (Gini over the authors who had something to show) and the
        filter-bubble measure: topic entropy of what users viewed today against the entropy of their
        interests, and KL(viewed ‖ interests) — lower entropy / higher KL = narrower feed."""
        for i in range(self.n_arms):
            self.exposure_daily[i].append(self.exposure[i].report(eligible_authors, publish=False))
        seen = self.topic_seen
        total = seen.sum(1)
        ok = total >= 5
        if not ok.any():
            return
        p = seen[ok] / total[ok, None]
        q = interests[ok].astype(np.float64) * 0.99 + 0.01 / seen.shape[1]
        kl = np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / q), 0).sum(1)
        arm = arm_of[ok]
        arm = np.where(arm < 0, self.n_arms, arm)
        for name, v in (("entropy_seen", entropy(p)), ("entropy_interest", interest_entropy[ok]), ("kl", kl)):
            self.bubble[name][:, d] = np.bincount(arm, weights=v, minlength=self.n_arms + 1)
        self.bubble["bubble_users"][:, d] = np.bincount(arm, minlength=self.n_arms + 1)

    # -- the result --------------------------------------------------------------------------------

    def daily(self, i: int) -> dict[str, list[float]]:
        """Arm i's rates, one value per day."""
        s = {m: self.sums[m][i] for m in self.sums}
        exposure, bubble = self.exposure_daily[i], self.bubble
        imp = np.maximum(s["impressions"], 1)
        rp = np.maximum(s["regret_pages"], 1)
        bu = np.maximum(bubble["bubble_users"][i], 1)
        row = {
            "sessions": s["sessions"], "impressions": s["impressions"],
            "engagement_rate": s["positives"] / imp, "click_rate": s["clicks"] / imp,
            # Two utilities, named apart: expected = Σ wᵢ·pᵢ of the ground-truth probabilities of each
            # viewed post (no sampling noise); realised = X's weights summed over the actions users took
            # (what the experiment's per-user "utility" metric measures). They agree on average only.
            "expected_utility": s["expected_utility"] / imp, "realised_utility": s["realised_utility"] / imp,
            "negative_rate": s["negatives"] / imp, "session_depth": s["impressions"] / np.maximum(s["sessions"], 1),
            "regret": s["regret"] / rp, "cumulative_regret": np.cumsum(s["regret"] / rp),
            "new_post_regret": s["new_post_regret"] / np.maximum(s["new_post_slots"], 1),
            "cumulative_new_post_regret": np.cumsum(s["new_post_regret"] / np.maximum(s["new_post_slots"], 1)),
            "oracle_utility": s["oracle_utility"] / rp,
            "topic_diversity": s["page_topics"] / np.maximum(s["pages"] - s["empty_pages"], 1),
            "author_diversity": s["page_authors"] / np.maximum(s["page_items"], 1),
            "out_of_network_share": s["out_of_network"] / imp,
            "new_post_share": s["new_post_impressions"] / imp,
            "new_post_engagement": s["new_post_positives"] / np.maximum(s["new_post_impressions"], 1),
            "creator_gini": np.array([e["creator_gini"] for e in exposure]),
            "popular_share": np.array([e["popular_share"] for e in exposure]),
            "long_tail_share": np.array([e["long_tail_share"] for e in exposure]),
            "topic_entropy_seen": bubble["entropy_seen"][i] / bu,
            "topic_entropy_interest": bubble["entropy_interest"][i] / bu,
            "topic_kl": bubble["kl"][i] / bu,
        }
        return {k: [round(float(x), 6) for x in v] for k, v in row.items()}

    def user_table(self, rows: np.ndarray, arm: np.ndarray) -> UserTable:
        """The experiment's per-user table for these user rows (with their arms)."""
        pu = self.per_user
        return UserTable(arm=arm, sessions=pu["sessions"][rows], impressions=pu["impressions"][rows],
                         positives=pu["positives"][rows], negatives=pu["negatives"][rows],
                         realised_utility=pu["realised_utility"][rows])

    def regret_intervals(self, groups: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
        """Cumulative regret (the sum over days of each day's per-slot regret, as plotted) per arm
        (`groups`: arm name → its user rows, the control first), all slots and new-post slots, with 95 %
        percentile intervals from resampling the arm's users (a user's pages are correlated, users are
        not); differences against the control resample the two arms independently."""
        rng = np.random.default_rng([seed, 4])
        draws: dict[str, dict[str, np.ndarray]] = {}
        out: dict[str, Any] = {"unit": "user", "resamples": BOOTSTRAP, "arms": {}, "vs_control": {}}
        per_day = self.regret_days
        for name, rows in groups.items():
            rows = rows[per_day["regret_pages"][rows].sum(1) > 0]
            if not len(rows):
                continue
            weights = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)), size=BOOTSTRAP)
            draws[name], out["arms"][name] = {}, {"users": len(rows)}
            for measure, num, den in (("regret", "regret", "regret_pages"),
                                      ("new_post_regret", "new_post_regret", "new_post_slots")):
                n, m = per_day[num][rows], per_day[den][rows]
                point = float((n.sum(0) / np.maximum(m.sum(0), 1)).sum())
                boot = ((weights @ n) / np.maximum(weights @ m, 1)).sum(1)
                draws[name][measure] = boot
                out["arms"][name][measure] = {"cumulative": point, "low": float(np.quantile(boot, 0.025)),
                                              "high": float(np.quantile(boot, 0.975)), "slots": int(m.sum())}
        control, *others = groups
        for name in others:
            if name in draws and control in draws:
                out["vs_control"][name] = {}
                for measure in ("regret", "new_post_regret"):
                    diff = draws[name][measure] - draws[control][measure]
                    point = out["arms"][name][measure]["cumulative"] - out["arms"][control][measure]["cumulative"]
                    out["vs_control"][name][measure] = {
                        "diff": point, "low": float(np.quantile(diff, 0.025)), "high": float(np.quantile(diff, 0.975)),
                        "share_below_zero": float((diff < 0).mean())}
        return out


def entropy(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each row of non-negative weights, normalised to sum 1."""
    p = np.asarray(p, np.float64)
    p = p / np.maximum(p.sum(-1, keepdims=True), 1e-12)
    out: np.ndarray = -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(-1)
    return out
