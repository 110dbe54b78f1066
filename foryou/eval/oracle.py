"""Against the synthetic world's ground truth: how much of the achievable expected utility a page gets.

For each evaluated user at the split instant, every list is compared with the oracle page of the
same length (same user, same time): the posts with the highest true expected utility among those
eligible (`GroundTruth.eligible_rows`: created in the last 48 h, not the user's own) and not already
shown to the user (no page may repeat an impression). `best_own_candidates` is the best page of that
length from the engine's own candidates (retrieval and filters fixed, ranking perfect) and
`ranked_own_candidates` the page of the heavy ranker's top candidates by predicted utility (no rescoring,
diversity or mixing): oracle → best_own_candidates is what retrieval loses, → ranked_own_candidates what
the ranker's errors lose, → our served page what the product policy (rescoring, diversity, mixing,
exploration) costs under a truth that has no taste for variety.

The blind oracles say what is achievable at all: each picks the page of the same length from the same
eligible posts with the truth minus one latent a ranker must estimate from data (`BLIND`), and is scored
by the full truth. `oracle_blind_to_taste` knows everything but the user × author taste affinity — the
largest term a model must learn from a few hundred impressions per user.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from foryou.data.lookup import member
from foryou.data.world.truth import GroundTruth, Latent
from foryou.eval.protocols import EvalSplit

# Latent → what a ranker blind to it falls back on (taste·style = 0; a post's quality = its author's).
BLIND: dict[str, Callable[[Latent, GroundTruth], dict[str, np.ndarray]]] = {
    "taste": lambda lat, truth: {"taste": np.zeros_like(lat.taste)},
    "post_quality": lambda lat, truth: {
        "post_quality": lat.author_quality[truth.posts.author_row[lat.content_row]].astype(np.float32)},
}


def blind_truths(truth: GroundTruth) -> dict[str, GroundTruth]:
    """The truth with each `BLIND` latent replaced by its fallback (same posts, params and weights)."""
    lat = truth.latent
    return {f"oracle_blind_to_{name}": GroundTruth(truth.params, Latent(**{**lat.__dict__, **swap(lat, truth)}),
                                                   truth.user_ids, truth.posts, truth.weights)
            for name, swap in BLIND.items()}


def seen_by_user(split: EvalSplit) -> tuple[np.ndarray, np.ndarray]:
    """(user index, post id) pairs shown to each evaluated user before the split."""
    imp = split.train.impressions
    u, p = imp["user_id"].to_numpy(), imp["post_id"].to_numpy()
    ok, ui = member(split.users, u)
    return ui[ok], p[ok]


def page_utilities(truth: GroundTruth, split: EvalSplit, lists: dict[str, np.ndarray],
                   candidates: list[tuple[np.ndarray, np.ndarray]] | None = None,
                   progress: Callable[[float], None] | None = None) -> dict[str, dict[str, np.ndarray]]:
    """Per method: per-user expected utility of its list (`served`), of the same-length oracle page
    (`oracle`), and the list length; plus the blind oracles at our page's length, and
    `best_own_candidates` / `ranked_own_candidates` when the engine's candidates (post ids, predicted
    utility) are given."""
    t = np.int64(split.as_of)
    seen_u, seen_p = seen_by_user(split)
    order = np.argsort(seen_u, kind="stable")
    seen_u, seen_p = seen_u[order], seen_p[order]
    bounds = np.searchsorted(seen_u, np.arange(len(split.users) + 1))
    n_users = len(split.users)
    out = {m: {"served": np.zeros(n_users), "oracle": np.zeros(n_users), "length": np.zeros(n_users, np.int64)}
           for m in lists}
    blind = blind_truths(truth)
    own = ["best_own_candidates", "ranked_own_candidates"] if candidates is not None else []
    for name in own + list(blind):
        out[name] = {"served": np.zeros(n_users), "oracle": np.zeros(n_users), "length": np.zeros(n_users, np.int64)}
    user_rows = truth.user_rows(split.users)
    for i in range(n_users):
        row = int(user_rows[i])
        rows = truth.eligible_rows(row, int(t))
        seen_rows = truth.post_rows(seen_p[bounds[i]:bounds[i + 1]]) if bounds[i + 1] > bounds[i] \
            else np.empty(0, np.int64)
        rows = rows[~np.isin(rows, seen_rows)]
        user = np.full(len(rows), row)
        true_util = truth.utility_from(truth.probabilities_rows(user, rows, t))
        util = np.sort(true_util)[::-1]
        best = np.r_[0.0, np.cumsum(util, dtype=np.float64)]
        for m, recs in lists.items():
            posts = recs[i][recs[i] >= 0]
            n = len(posts)
            if n:
                out[m]["served"][i] = float(truth.expected_utility(np.full(n, split.users[i]), posts, t).sum())
            out[m]["oracle"][i] = best[min(n, len(util))]
            out[m]["length"][i] = n
        ours = int(out[next(iter(lists))]["length"][i])  # the served page's length (our system comes first)
        if candidates is not None:
            n = ours
            c, predicted = candidates[i]
            cu = truth.expected_utility(np.full(len(c), split.users[i]), c, t) if len(c) else np.empty(0)
            for name, order in (("best_own_candidates", np.argsort(-cu, kind="stable")),
                                ("ranked_own_candidates", np.argsort(-predicted, kind="stable"))):
                out[name]["served"][i] = float(np.sum(cu[order[:n]], dtype=np.float64))
                out[name]["oracle"][i] = best[min(n, len(util))]
                out[name]["length"][i] = min(n, len(c))
        n = min(ours, len(rows))
        for name, g in blind.items():
            guess = g.utility_from(g.probabilities_rows(user, rows, t))
            out[name]["served"][i] = float(np.sum(true_util[np.argsort(-guess, kind="stable")[:n]], dtype=np.float64))
            out[name]["oracle"][i] = best[n]
            out[name]["length"][i] = n
        if progress is not None and i % 20 == 0:
            progress((i + 1) / n_users)
    return out
