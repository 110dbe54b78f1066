"""RealGraph (REFERENCE.md): how much a user cares about each account they interact with.

Per directed pair (user → account) we keep decayed counts (half-life 7 days) of the user's actions
on the account's posts — like, repost, reply, profile_click, click, follow_author (positive) and
not_interested, mute, block, report (negative) — plus the follow edge as a prior. The weight is a
documented heuristic logistic model

    w = σ(bias + coef_follow · follows + Σ_k coef_k · log1p(decayed_count_k))

with the coefficients in `RealGraphCoefficients`. `features()` returns exactly the inputs of that
model, so a learned classifier (predicting interaction tomorrow) replaces the coefficients later.

Counts are stored relative to a reference time t_ref (a count at t is 2^((t − t_ref)/half_life)),
so decaying to `now` is one factor and `record()` needs no rescan. Storage is two CSRs over user
rows (follows; interacted pairs with one column per kind) plus a small real-time overlay.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.config import Strict
from foryou.data.lookup import member, rows_of
from foryou.data.snapshot import Arrays
from foryou.data.split import History, _require_history, follow_graph
from foryou.vocab import DAY, NEGATIVE, POSITIVE

KINDS: tuple[str, ...] = (*POSITIVE, "profile_click", "click", "follow_author", *NEGATIVE)
KIND_INDEX = {k: i for i, k in enumerate(KINDS)}
FEATURES: tuple[str, ...] = ("follows", *KINDS)


class RealGraphCoefficients(Strict):
    """Heuristic weights (log-odds per log1p(decayed count)); replaced by a learned model later.

    A follow with no interaction gives σ(−2 + 1.5) ≈ 0.38; a few likes push it towards 0.6–0.8;
    a single block drops it to ≈ 0.01. Replies and reposts weigh more than likes (costlier actions,
    as in the light ranker's label weights); clicks weigh least.
    """

    bias: float = -2.0
    follows: float = 1.5
    like: float = 0.6
    repost: float = 0.8
    reply: float = 1.0
    profile_click: float = 0.7
    click: float = 0.3
    follow_author: float = 1.0
    not_interested: float = -1.5
    mute: float = -3.0
    block: float = -5.0
    report: float = -4.0

    @classmethod
    def learned(cls, weights: np.ndarray, bias: float) -> RealGraphCoefficients:
        """A fitted logistic regression over `FEATURES` (raw, standardisation folded in) as coefficients."""
        return cls(bias=float(bias), **{f: float(v) for f, v in zip(FEATURES, weights, strict=True)})

    def vector(self) -> np.ndarray:
        return np.array([getattr(self, f) for f in FEATURES])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class RealGraph:
    def __init__(self, t_ref: int, half_life_days: float, follow_indptr: np.ndarray, follow_indices: np.ndarray,
                 pair_indptr: np.ndarray, pair_indices: np.ndarray, pair_counts: np.ndarray,
                 coefficients: RealGraphCoefficients | None = None):
        self.t_ref = int(t_ref)
        self.now = int(t_ref)
        self.half_life_s = half_life_days * DAY
        self.coefficients = coefficients or RealGraphCoefficients()
        self._f_indptr, self._f_indices = follow_indptr, follow_indices
        self._p_indptr, self._p_indices, self._p_counts = pair_indptr, pair_indices, pair_counts
        self._overlay: dict[int, dict[int, np.ndarray]] = {}  # user → target → [follows, counts...]

    @classmethod
    def build(cls, h: History, half_life_days: float = 7.0,
              coefficients: RealGraphCoefficients | None = None) -> RealGraph:
        h = _require_history(h)
        graph = follow_graph(h)
        users = graph.user_ids
        n = len(users)
        fa = graph.adjacency
        posts = h.posts.sort_by("post_id")
        author = rows_of(users, posts["author_id"].to_numpy(), "user")
        e = h.engagements
        kinds = pa.array(list(KINDS))
        e = e.filter(pc.is_in(e["kind"], kinds))
        kind = pc.index_in(e["kind"], value_set=kinds).to_numpy(zero_copy_only=False).astype(np.int64)
        src = rows_of(users, e["user_id"].to_numpy(), "user")
        dst = author[rows_of(posts["post_id"].to_numpy(), e["post_id"].to_numpy(), "post")]
        w = 2.0 ** ((e["created_at"].to_numpy() - h.as_of) / (half_life_days * DAY))
        other = src != dst
        src, dst, kind, w = src[other], dst[other], kind[other], w[other]
        keys, inverse = np.unique(src * n + dst, return_inverse=True)
        counts = np.zeros((len(keys), len(KINDS)))
        flat = np.bincount(inverse * len(KINDS) + kind, weights=w, minlength=len(keys) * len(KINDS))
        counts[:] = flat.reshape(len(keys), len(KINDS))
        indptr = np.r_[0, np.cumsum(np.bincount(keys // n, minlength=n))].astype(np.int64)
        return cls(h.as_of, half_life_days, fa.indptr.astype(np.int64), fa.indices.astype(np.int64),
                   indptr, (keys % n).astype(np.int64), counts, coefficients)

    # -- snapshot ---------------------------------------------------------------------------------

    def to_arrays(self) -> Arrays:
        """The graph, its coefficients and its real-time overlay as named arrays (`foryou.data.snapshot`)."""
        pairs = [(u, t, v) for u, targets in self._overlay.items() for t, v in targets.items()]
        return {
            "t_ref": self.t_ref, "now": self.now, "half_life_s": float(self.half_life_s),
            "coefficients": self.coefficients.model_dump(),
            "follow_indptr": self._f_indptr, "follow_indices": self._f_indices,
            "pair_indptr": self._p_indptr, "pair_indices": self._p_indices, "pair_counts": self._p_counts,
            "overlay_user": np.array([u for u, _, _ in pairs], dtype=np.int64),
            "overlay_target": np.array([t for _, t, _ in pairs], dtype=np.int64),
            "overlay_vector": np.array([v for _, _, v in pairs], dtype=np.float64).reshape(len(pairs), len(FEATURES)),
        }

    @classmethod
    def from_arrays(cls, arrays: Arrays) -> RealGraph:
        half_life_s = float(arrays["half_life_s"])
        graph = cls(arrays["t_ref"], half_life_s / DAY, arrays["follow_indptr"], arrays["follow_indices"],
                    arrays["pair_indptr"], arrays["pair_indices"], arrays["pair_counts"],
                    RealGraphCoefficients.model_validate(arrays["coefficients"]))
        graph.now, graph.half_life_s = int(arrays["now"]), half_life_s  # exactly as saved, not days·DAY again
        for u, t, v in zip(arrays["overlay_user"].tolist(), arrays["overlay_target"].tolist(),
                           np.array(arrays["overlay_vector"]), strict=True):
            graph._overlay.setdefault(u, {})[t] = v
        return graph

    # -- features and weights ---------------------------------------------------------------------

    def features(self, user_row: int, target_rows: np.ndarray, now: int | None = None) -> np.ndarray:
        """(len(targets), len(FEATURES)): [follows, log1p(decayed count of each kind at `now`)]."""
        t = np.atleast_1d(np.asarray(target_rows, dtype=np.int64))
        raw = np.zeros((len(t), len(FEATURES)))
        f = self._f_indices[self._f_indptr[user_row]:self._f_indptr[user_row + 1]]
        raw[:, 0] = member(f, t)[0]
        lo, hi = self._p_indptr[user_row], self._p_indptr[user_row + 1]
        found, at = member(self._p_indices[lo:hi], t)
        if found.any():
            raw[found, 1:] = self._p_counts[lo + at[found]]
        for target, vec in self._overlay.get(int(user_row), {}).items():
            hit = t == target
            raw[hit, 0] = np.maximum(raw[hit, 0], vec[0])
            raw[hit, 1:] += vec[1:]
        now = self.now if now is None else now
        decay = 2.0 ** (-(now - self.t_ref) / self.half_life_s)
        raw[:, 1:] = np.log1p(np.maximum(raw[:, 1:] * decay, 0.0))
        return raw

    def weights(self, user_row: int, target_rows: np.ndarray, now: int | None = None) -> np.ndarray:
        """σ(bias + coefficients · features): the heuristic RealGraph weight of each target."""
        x = self.features(user_row, target_rows, now)
        return _sigmoid(x @ self.coefficients.vector() + self.coefficients.bias)

    def follows(self, user_row: int) -> np.ndarray:
        f = self._f_indices[self._f_indptr[user_row]:self._f_indptr[user_row + 1]]
        extra = [t for t, v in self._overlay.get(int(user_row), {}).items() if v[0] > 0]
        return np.union1d(f, np.asarray(extra, dtype=np.int64)) if extra else f

    def top_follows(self, user_row: int, k: int, now: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(target rows, weights) of the user's k best follows, by weight (follows without any
        interaction still get the follow prior)."""
        f = self.follows(user_row)
        if not len(f):
            return np.empty(0, np.int64), np.empty(0)
        w = self.weights(user_row, f, now)
        order = np.lexsort((f, -w))[:k]
        return f[order], w[order]

    # -- real time --------------------------------------------------------------------------------

    def record(self, user_row: int, target_row: int, kind: str, t: int) -> None:
        """A real-time action of `user_row` on `target_row` (kind in KINDS, or "follow")."""
        if user_row == target_row:
            return
        vec = self._overlay.setdefault(int(user_row), {}).setdefault(int(target_row), np.zeros(len(FEATURES)))
        if kind == "follow":
            vec[0] = 1.0
        elif kind in KIND_INDEX:
            vec[1 + KIND_INDEX[kind]] += 2.0 ** ((t - self.t_ref) / self.half_life_s)
        else:
            raise ValueError(f"unknown RealGraph kind {kind!r}; expected follow or one of {KINDS}")
        self.now = max(self.now, int(t))

