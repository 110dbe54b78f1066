"""The synthetic world's ground truth: the true probability of every action, vectorised.

A pure function of latent parameters and (user, post, time) — no hidden mutable state — so any
ranking can be scored against it and against the oracle page it implies.

Model (one shared "interest" logit z, then one link per head):

    z = base_u + topic·log(K·interest_u[topic_p] + ε) + affinity·⟨taste_u, style_author⟩
        + quality·quality_p + media_pref_u·media_p + recency·log1p(age_hours)
    z⁺ = z − unsafe·sensitivity_u·(weighted safety labels of p)

Positive heads are sigmoid(intercept + slope·z⁺ + extras); negative heads rise as z falls and
with unsafe content; dwell is P(lognormal dwell seconds ≥ threshold). Reposts carry their
original's content (topic, quality, labels, author style) but their own creation time.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from scipy.special import expit, ndtr, ndtri

from foryou.config import EngagementWeights
from foryou.data.lookup import rows_of
from foryou.data.manifest import DatasetError
from foryou.vocab import NEGATIVE, POSITIVE_HEADS, SAFETY_LABELS

TRUTH_DIR = "ground_truth"
LATENT_FILE = "latent.npz"
PARAMS_FILE = "params.json"



@dataclass(frozen=True)
class TruthParams:
    """Coefficients of the ground-truth model (stored with the world as JSON)."""

    n_topics: int
    topic: float = 0.9
    topic_eps: float = 0.15
    affinity: float = 0.7
    quality: float = 0.5
    recency: float = -0.35
    unsafe: float = 1.5
    label_weights: dict[str, float] = field(
        default_factory=lambda: {"is_nsfw": 1.0, "is_toxic": 1.0, "is_spam": 1.5, "is_misinfo": 0.8}
    )
    # (intercept, slope on z) per head; negative heads use slope on −z.
    heads: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "click": (-2.6, 0.8),
            "like": (-3.2, 1.0),
            "repost": (-5.0, 1.1),
            "reply": (-5.8, 0.9),
            "profile_click": (-5.0, 0.7),
            "follow_author": (-7.0, 0.8),
            "not_interested": (-5.0, 0.5),
            "mute": (-7.0, 0.35),
            "block": (-8.0, 0.3),
            "report": (-9.0, 0.2),
        }
    )
    # Extra unsafe sensitivity of negative heads (multiplies sensitivity·unsafe).
    negative_unsafe: dict[str, float] = field(
        default_factory=lambda: {"not_interested": 2.5, "mute": 2.0, "block": 2.5, "report": 3.0}
    )
    dwell_mu: float = 1.0
    dwell_slope: float = 0.45
    dwell_sigma: float = 0.9
    dwell_threshold_s: float = 10.0
    window_hours: float = 48.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> TruthParams:
        raw = json.loads(text)
        raw["heads"] = {k: tuple(v) for k, v in raw["heads"].items()}
        return cls(**raw)


@dataclass
class Latent:
    """Latent arrays aligned with the users table (by row) and posts table (by row)."""

    interests: np.ndarray  # (U, K) float32, rows sum to 1
    taste: np.ndarray  # (U, d) float32: what a user likes in an author
    style: np.ndarray  # (U, d) float32: what an author is like
    base: np.ndarray  # (U,) float32
    sensitivity: np.ndarray  # (U,) float32 in [0, 1]
    media_pref: np.ndarray  # (U,) float32
    activity: np.ndarray  # (U,) float32 sessions per day
    author_quality: np.ndarray  # (U,) float32
    post_quality: np.ndarray  # (P,) float32
    content_row: np.ndarray  # (P,) int64: the row whose content a post shows (itself, or a repost's parent)

    def to_npz(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, **self.__dict__)
        return buf.getvalue()

    @classmethod
    def from_npz(cls, path: Path) -> Latent:
        with np.load(path, allow_pickle=False) as z:
            return cls(**{k: z[k] for k in cls.__dataclass_fields__})


@dataclass
class PostColumns:
    """The post attributes the truth needs, as numpy columns aligned with the posts table."""

    post_id: np.ndarray
    author_row: np.ndarray
    created_at: np.ndarray
    topic: np.ndarray
    has_media: np.ndarray
    length: np.ndarray
    labels: dict[str, np.ndarray]


class GroundTruth:
    """True action probabilities and expected utility for any (user, post, time)."""

    def __init__(
        self,
        params: TruthParams,
        latent: Latent,
        user_ids: np.ndarray,
        posts: PostColumns,
        weights: EngagementWeights | None = None,
    ):
        self.params = params
        self.latent = latent
        self.user_ids = np.asarray(user_ids, dtype=np.int64)
        self.posts = posts
        self.weights = weights or EngagementWeights()
        self._label_w = np.array(list(params.label_weights.values()), dtype=np.float32)
        self._post_order = np.argsort(posts.post_id, kind="stable")
        self._by_created = np.argsort(posts.created_at, kind="stable")
        self._created_sorted = posts.created_at[self._by_created]

    # -- loading ------------------------------------------------------------------------------

    @classmethod
    def load(cls, dataset_dir: str | Path, weights: EngagementWeights | None = None) -> GroundTruth:
        root = Path(dataset_dir)
        tdir = root / TRUTH_DIR
        if not (tdir / LATENT_FILE).exists():
            raise DatasetError(f"{root}: no ground truth (only synthetic worlds have one)")
        params = TruthParams.from_json((tdir / PARAMS_FILE).read_text())
        latent = Latent.from_npz(tdir / LATENT_FILE)
        users = pq.read_table(root / "users.parquet", columns=["user_id"])["user_id"].to_numpy()
        cols = ["post_id", "author_id", "created_at", "topic", "has_media", "length", *SAFETY_LABELS]
        p = pq.read_table(root / "posts.parquet", columns=cols)
        posts = PostColumns(
            post_id=p["post_id"].to_numpy(),
            author_row=rows_of(users, p["author_id"].to_numpy(), "user"),
            created_at=p["created_at"].to_numpy(),
            topic=p["topic"].to_numpy().astype(np.int64),
            has_media=p["has_media"].to_numpy(zero_copy_only=False),
            length=p["length"].to_numpy(),
            labels={k: p[k].to_numpy(zero_copy_only=False) for k in params.label_weights},
        )
        return cls(params, latent, users, posts, weights)

    # -- ids <-> rows -------------------------------------------------------------------------

    def user_rows(self, user_ids: np.ndarray) -> np.ndarray:
        return rows_of(self.user_ids, user_ids, "user")

    def post_rows(self, post_ids: np.ndarray) -> np.ndarray:
        return self._post_order[rows_of(self.posts.post_id[self._post_order], post_ids, "post")]

    # -- the model ----------------------------------------------------------------------------

    def probabilities(self, user_ids, post_ids, t) -> dict[str, np.ndarray]:
        """P(action) per head for aligned arrays of users, posts and times (broadcast)."""
        u, p = np.broadcast_arrays(np.asarray(user_ids), np.asarray(post_ids))
        return self.probabilities_rows(self.user_rows(u.ravel()), self.post_rows(p.ravel()),
                                       np.broadcast_to(np.asarray(t, dtype=np.int64), u.shape).ravel())

    def probabilities_rows(self, u: np.ndarray, p: np.ndarray, t: np.ndarray | np.integer | int
                           ) -> dict[str, np.ndarray]:
        prm, lat, posts = self.params, self.latent, self.posts
        c = lat.content_row[p]
        t = np.broadcast_to(np.asarray(t, dtype=np.int64), p.shape)
        age_h = (t - posts.created_at[p]).astype(np.float32) / 3600.0
        exists = age_h >= 0
        age_h = np.maximum(age_h, 0.0)

        interest = lat.interests[u, np.maximum(posts.topic[c], 0)]
        affinity = np.einsum("ij,ij->i", lat.taste[u], lat.style[posts.author_row[c]])
        media = posts.has_media[c].astype(np.float32)
        z = (
            lat.base[u]
            + prm.topic * np.log(prm.n_topics * interest + prm.topic_eps)
            + prm.affinity * affinity
            + prm.quality * lat.post_quality[c]
            + lat.media_pref[u] * media
            + prm.recency * np.log1p(age_h)
        ).astype(np.float32)
        unsafe = np.zeros(len(p), dtype=np.float32)
        for w, name in zip(self._label_w, prm.label_weights, strict=True):
            unsafe += w * posts.labels[name][c]
        exposure = lat.sensitivity[u] * unsafe
        zp = z - prm.unsafe * exposure

        out: dict[str, np.ndarray] = {}
        length = posts.length[c].astype(np.float32)
        extras = {
            "click": 0.0,
            "reply": 0.004 * (length - 100.0),
            "repost": 0.3 * media,
            "profile_click": 0.5 * affinity,
            "follow_author": 0.8 * affinity,
        }
        for head in POSITIVE_HEADS:
            a, b = prm.heads[head]
            out[head] = expit(a + b * zp + extras.get(head, 0.0))
        for head in NEGATIVE:
            a, b = prm.heads[head]
            out[head] = expit(a - b * z + prm.negative_unsafe[head] * exposure)
        mu = prm.dwell_mu + prm.dwell_slope * zp + 0.003 * length + 0.5 * media
        out["dwell"] = ndtr((mu - np.log(prm.dwell_threshold_s)) / prm.dwell_sigma)
        for head in out:
            out[head] = np.where(exists, out[head], 0.0).astype(np.float32)
        return out

    def dwell_log_mu(self, probs_dwell: np.ndarray) -> np.ndarray:
        """Mean of log dwell seconds (σ = params.dwell_sigma), recovered from P(dwell ≥ threshold)."""
        prm = self.params
        q = np.clip(probs_dwell, 1e-7, 1 - 1e-7)
        return np.log(prm.dwell_threshold_s) + prm.dwell_sigma * ndtri(q)

    def utility_from(self, probs: dict[str, np.ndarray]) -> np.ndarray:
        """Expected utility Σ wᵢ·pᵢ under X's weights (negative feedback = any of three)."""
        w = self.weights
        negative = 1.0 - (1 - probs["not_interested"]) * (1 - probs["mute"]) * (1 - probs["block"])
        return (
            w.like * probs["like"] + w.repost * probs["repost"] + w.reply * probs["reply"]
            + w.profile_click * probs["profile_click"] + w.click * probs["click"]
            + w.dwell * probs["dwell"] + w.follow_author * probs["follow_author"]
            + w.negative_feedback * negative + w.report * probs["report"]
        ).astype(np.float32)

    def expected_utility(self, user_ids, post_ids, t) -> np.ndarray:
        return self.utility_from(self.probabilities(user_ids, post_ids, t))

    # -- the oracle ---------------------------------------------------------------------------

    def eligible_rows(self, user_row: int, t: int, window_hours: float | None = None) -> np.ndarray:
        """Rows of posts created in (t − window, t] by someone other than the user."""
        hours = self.params.window_hours if window_hours is None else window_hours
        lo = np.searchsorted(self._created_sorted, t - int(hours * 3600), side="right")
        hi = np.searchsorted(self._created_sorted, t, side="right")
        rows = self._by_created[lo:hi]
        return rows[self.posts.author_row[rows] != user_row]

    def oracle_timeline(self, user_id: int, t: int, n: int = 35,
                        window_hours: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The n eligible posts with the highest expected utility: (post_ids, utilities), best first."""
        row = int(self.user_rows(np.array([user_id]))[0])
        rows = self.eligible_rows(row, int(t), window_hours)
        if len(rows) == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        util = self.utility_from(self.probabilities_rows(np.full(len(rows), row), rows, np.int64(t)))
        k = min(n, len(rows))
        top = np.argpartition(-util, k - 1)[:k]
        top = top[np.argsort(-util[top], kind="stable")]
        return self.posts.post_id[rows[top]], util[top]
