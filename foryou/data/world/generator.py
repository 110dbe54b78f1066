"""Generate a synthetic world: users, authors, a follow graph, posts over simulated days, sessions
of impressions under a randomised logging policy (`world.policy`), and engagements sampled from the
ground truth.

Everything is vectorised over columns; the only loops are over stages and fixed-size chunks.
Same config and seed → identical tables.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from foryou.config import WorldConfig
from foryou.data.dataset import Dataset
from foryou.data.lookup import member
from foryou.data.manifest import Manifest, SplitTimes
from foryou.data.world.policy import LoggingPolicy, rank_within, sample_rows
from foryou.data.world.truth import LATENT_FILE, PARAMS_FILE, TRUTH_DIR, GroundTruth, Latent, PostColumns, TruthParams
from foryou.logs import Progress
from foryou.vocab import DAY, ENGAGEMENT_KINDS, SAFETY_LABELS

GENERATOR = "foryou.world 0.1.0"
TASTE_DIM = 8
# Daily rhythm: a morning and a larger evening peak (relative activity per UTC hour).
_HOURS = np.arange(24)
RHYTHM = 0.25 + np.exp(-((_HOURS - 9) ** 2) / 8) + 1.4 * np.exp(-((_HOURS - 20) ** 2) / 6)
RHYTHM = RHYTHM / RHYTHM.sum()
# Mean delay (s) between an impression and the action on it.
ACTION_DELAY_S = {"click": 5, "like": 20, "repost": 30, "reply": 90, "profile_click": 15,
                  "follow_author": 40, "not_interested": 10, "mute": 12, "block": 12, "report": 25}



@dataclass
class World:
    dataset: Dataset
    truth: GroundTruth
    seconds: float

    def write(self, path) -> None:
        self.dataset.write(path, extra_files={
            f"{TRUTH_DIR}/{LATENT_FILE}": self.truth.latent.to_npz(),
            f"{TRUTH_DIR}/{PARAMS_FILE}": self.truth.params.to_json().encode(),
        })


def _unique_sorted(keys: np.ndarray) -> np.ndarray:
    keys = np.sort(keys)
    return keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys


class WorldGenerator:
    def __init__(self, config: WorldConfig, seed: int, progress: Progress | None = None):
        self.cfg = config
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.progress = progress or (lambda stage, frac: None)

    # -- stages ---------------------------------------------------------------------------------

    def _users(self) -> None:
        cfg, rng = self.cfg, self.rng
        n, k = cfg.n_users, cfg.n_topics
        self.interests = rng.dirichlet(np.full(k, 0.12), size=n).astype(np.float32)
        self.taste = (rng.normal(0, 1, (n, TASTE_DIM)) / TASTE_DIM**0.25).astype(np.float32)
        self.style = (rng.normal(0, 1, (n, TASTE_DIM)) / TASTE_DIM**0.25).astype(np.float32)
        self.base = rng.normal(0, 0.5, n).astype(np.float32)
        self.sensitivity = rng.beta(2, 3, n).astype(np.float32)
        self.media_pref = rng.normal(0.2, 0.5, n).astype(np.float32)
        act = rng.lognormal(0, 1.0, n)
        self.activity = np.minimum(act / act.mean() * cfg.sessions_per_day, 24).astype(np.float32)
        # As authors: heavy-tailed posting rate and fame, topics sharper than interests.
        rate = rng.lognormal(0, 1.4, n)
        self.post_rate = rate / rate.sum() * cfg.n_posts / cfg.days
        mix = self.interests.astype(np.float64) ** 3 + 1e-4
        self.topic_mix = mix / mix.sum(1, keepdims=True)
        self.author_quality = rng.normal(0, 1, n).astype(np.float32)
        self.fame = (rng.pareto(1.3, n) + 1) * np.sqrt(rate)
        self.label_prop = {}
        for label in SAFETY_LABELS:
            bad = rng.random(n) < 0.04
            self.label_prop[label] = np.where(bad, rng.beta(2, 4, n), rng.beta(0.5, 60, n))
        self.media_prop = rng.beta(2, 3, n)
        self.link_prop = rng.beta(1.2, 4, n)
        self.user_created = cfg.start_time - rng.integers(30 * DAY, 2000 * DAY, n)

    def _follows(self) -> None:
        cfg, rng = self.cfg, self.rng
        n, k = cfg.n_users, cfg.n_topics
        sigma = 0.9
        deg = rng.lognormal(np.log(cfg.mean_follows) - sigma**2 / 2, sigma, n)
        deg = np.clip(np.round(deg), 1, min(n - 1, 5000)).astype(np.int64)
        deg[rng.random(n) < cfg.no_follow_share] = 0
        draws = np.ceil(deg * 1.8).astype(np.int64)
        src = np.repeat(np.arange(n), draws)
        # Homophily: the followee's primary topic follows the follower's interests.
        mix = 0.85 * self.interests + 0.15 / k
        topic = sample_rows(np.cumsum(mix, 1), src, rng.random(len(src)))
        primary = self.topic_mix.argmax(1)
        order = np.argsort(primary, kind="stable")
        seg_topic = primary[order]
        w = self.fame[order]
        seg_sum = np.bincount(seg_topic, weights=w, minlength=k)
        cum = np.cumsum(w / seg_sum[seg_topic])
        seg_start = np.searchsorted(seg_topic, np.arange(k))
        before = np.r_[0.0, cum][seg_start]  # cumulative weight before each segment
        cdf = seg_topic + (cum - before[seg_topic])
        pos = np.searchsorted(cdf, topic + rng.random(len(src)), side="right")
        dst = order[np.minimum(pos, n - 1)]
        # Taste affinity decides which of the proposed followees are kept.
        aff = np.einsum("ij,ij->i", self.taste[src], self.style[dst])
        keep = (src != dst) & (rng.random(len(src)) < 1 / (1 + np.exp(-(1.5 * aff + 0.5))))
        src, dst = src[keep], dst[keep]
        key = _unique_sorted(src * n + dst)
        src, dst = key // n, key % n
        shuffle = rng.permutation(len(src))
        shuffle = shuffle[np.argsort(src[shuffle], kind="stable")]
        src, dst = src[shuffle], dst[shuffle]
        keep = rank_within(src) < deg[src]
        src, dst = src[keep], dst[keep]
        key = np.sort(src * n + dst)
        self.f_src, self.f_dst = key // n, key % n
        self.f_key = key
        self.f_created = cfg.start_time - rng.integers(1, 365 * DAY, len(key))
        self.f_indptr = np.r_[0, np.cumsum(np.bincount(self.f_src, minlength=n))]

    def _posts(self) -> None:
        cfg, rng = self.cfg, self.rng
        counts = rng.poisson(self.post_rate * cfg.days)
        author = np.repeat(np.arange(cfg.n_users), counts)
        m = len(author)
        created = (cfg.start_time + rng.integers(0, cfg.days, m) * DAY
                   + rng.choice(24, m, p=RHYTHM) * 3600 + rng.integers(0, 3600, m))
        topic = sample_rows(np.cumsum(self.topic_mix, 1), author, rng.random(m))
        order = np.lexsort((author, created))
        self.p_author = author[order]
        self.p_created = created[order].astype(np.int64)
        self.p_topic = topic[order].astype(np.int16)
        a = self.p_author
        self.p_media = rng.random(m) < self.media_prop[a]
        self.p_link = rng.random(m) < self.link_prop[a]
        self.p_length = np.clip(rng.lognormal(4.2, 0.8, m), 1, 280).astype(np.int32)
        self.p_labels = {lb: rng.random(m) < self.label_prop[lb][a] for lb in SAFETY_LABELS}
        self.p_quality = (self.author_quality[a] + rng.normal(0, 0.6, m)).astype(np.float32)

    def _sessions(self) -> None:
        cfg, rng = self.cfg, self.rng
        # Sessions start on day 1 so that the logging policy's window has posts to show.
        counts = rng.poisson(self.activity * (cfg.days - 1))
        user = np.repeat(np.arange(cfg.n_users), counts)
        s = len(user)
        t = (cfg.start_time + rng.integers(1, cfg.days, s) * DAY
             + rng.choice(24, s, p=RHYTHM) * 3600 + rng.integers(0, 3600, s))
        order = np.lexsort((user, t))
        self.s_user, self.s_time = user[order], t[order].astype(np.int64)

    def _impressions(self) -> None:
        """Fill every session's slots under the logging policy, chunk by chunk."""
        policy = LoggingPolicy(self.cfg, self.interests, self.p_created, self.p_topic, self.p_author,
                               self.f_indptr, self.f_dst, self.f_key)
        chunks = []
        chunk = 20_000
        n_sessions = len(self.s_user)
        for start in range(0, n_sessions, chunk):
            self.progress("impressions", start / max(n_sessions, 1))
            sl = slice(start, start + chunk)
            chunks.append(policy.fill(self.s_user[sl], self.s_time[sl], start + 1, self.rng))
        self.progress("impressions", 1.0)
        if not chunks:
            raise ValueError("the world has no sessions: raise days, users or sessions_per_day")
        user, post, t, session, pos, prop = (np.concatenate(xs) for xs in zip(*chunks, strict=True))
        # A post is shown to a user at most once: keep the first showing (arrays are in time order).
        _, first = np.unique(user * len(self.p_author) + post, return_index=True)
        first.sort()
        self.i_user, self.i_post, self.i_time, self.i_session, self.i_pos, self.i_prop = (
            xs[first] for xs in (user, post, t, session, pos, prop))

    def _truth(self, extra_posts: dict | None = None) -> GroundTruth:
        cfg = self.cfg
        params = TruthParams(n_topics=cfg.n_topics, dwell_threshold_s=cfg.dwell_threshold_s,
                             window_hours=cfg.window_hours)
        p = extra_posts or {}
        cat = lambda name, base: np.concatenate([base, p[name]]) if p else base  # noqa: E731
        m0 = len(self.p_author)
        latent = Latent(
            interests=self.interests, taste=self.taste, style=self.style, base=self.base,
            sensitivity=self.sensitivity, media_pref=self.media_pref, activity=self.activity,
            author_quality=self.author_quality,
            post_quality=cat("quality", self.p_quality),
            content_row=cat("content_row", np.arange(m0)),
        )
        posts = PostColumns(
            post_id=np.arange(1, m0 + len(p.get("author", ())) + 1, dtype=np.int64),
            author_row=cat("author", self.p_author),
            created_at=cat("created", self.p_created),
            topic=cat("topic", self.p_topic).astype(np.int64),
            has_media=cat("media", self.p_media),
            length=cat("length", self.p_length),
            labels={lb: cat(lb, self.p_labels[lb]) for lb in SAFETY_LABELS},
        )
        return GroundTruth(params, latent, np.arange(1, cfg.n_users + 1, dtype=np.int64), posts)

    def _engagements(self, truth: GroundTruth) -> None:
        """Sample every head for every impression from the ground truth."""
        rng = self.rng
        n_imp = len(self.i_user)
        rows: dict[str, list[np.ndarray]] = {"imp": [], "kind": [], "delay": [], "value": []}
        chunk = 1_000_000
        dwell_sigma = truth.params.dwell_sigma
        for start in range(0, n_imp, chunk):
            self.progress("engagements", start / max(n_imp, 1))
            sl = slice(start, start + chunk)
            probs = truth.probabilities_rows(self.i_user[sl], self.i_post[sl], self.i_time[sl])
            idx = np.arange(start, min(start + chunk, n_imp))
            for kind_id, head in enumerate(ENGAGEMENT_KINDS):
                if head == "dwell":
                    secs = np.exp(truth.dwell_log_mu(probs["dwell"]) + dwell_sigma * rng.standard_normal(len(idx)))
                    hit = secs >= self.cfg.dwell_threshold_s
                    value, delay = secs[hit], secs[hit]
                else:
                    hit = rng.random(len(idx)) < probs[head]
                    value = np.ones(hit.sum())
                    delay = rng.exponential(ACTION_DELAY_S[head], hit.sum())
                rows["imp"].append(idx[hit])
                rows["kind"].append(np.full(hit.sum(), kind_id, dtype=np.int8))
                rows["delay"].append(delay)
                rows["value"].append(value)
        self.progress("engagements", 1.0)
        imp = np.concatenate(rows["imp"]) if rows["imp"] else np.empty(0, np.int64)
        kind = np.concatenate(rows["kind"]) if rows["kind"] else np.empty(0, np.int8)
        delay = np.concatenate(rows["delay"]) if rows["delay"] else np.empty(0)
        value = np.concatenate(rows["value"]) if rows["value"] else np.empty(0)
        e_time = self.i_time[imp] + np.ceil(delay).astype(np.int64) + 1
        e_user, e_post = self.i_user[imp], self.i_post[imp]
        # follow_author: only for authors not already followed, once per (user, author).
        fa = kind == ENGAGEMENT_KINDS.index("follow_author")
        fkey = e_user * self.cfg.n_users + self.p_author[e_post]
        already, _ = member(self.f_key, fkey)
        drop = fa & already
        fa_idx = np.flatnonzero(fa & ~already)
        order = fa_idx[np.lexsort((e_time[fa_idx], fkey[fa_idx]))]
        dup = np.r_[False, fkey[order][1:] == fkey[order][:-1]]
        drop[order[dup]] = True
        keep = ~drop
        order = np.lexsort((kind[keep], e_time[keep]))
        self.e_user = e_user[keep][order]
        self.e_post = e_post[keep][order]
        self.e_kind = kind[keep][order]
        self.e_time = e_time[keep][order]
        self.e_value = value[keep][order].astype(np.float32)

    def _derived(self) -> dict[str, np.ndarray]:
        """Reposts and replies become posts; follow_author becomes a follow edge."""
        rng = self.rng
        rp = np.isin(self.e_kind, [ENGAGEMENT_KINDS.index("repost"), ENGAGEMENT_KINDS.index("reply")])
        idx = np.flatnonzero(rp)
        idx = idx[np.argsort(self.e_time[idx], kind="stable")]
        parent = self.e_post[idx]
        author = self.e_user[idx]
        is_reply = self.e_kind[idx] == ENGAGEMENT_KINDS.index("reply")
        m = len(idx)
        own_labels = {lb: rng.random(m) < self.label_prop[lb][author] for lb in SAFETY_LABELS}
        d = {
            "author": author,
            "created": self.e_time[idx],
            "parent": parent,
            "is_reply": is_reply,
            "topic": self.p_topic[parent],
            "media": np.where(is_reply, rng.random(m) < self.media_prop[author], self.p_media[parent]),
            "link": np.where(is_reply, rng.random(m) < self.link_prop[author], self.p_link[parent]),
            "length": np.where(is_reply, np.clip(rng.lognormal(3.8, 0.8, m), 1, 280).astype(np.int32),
                               self.p_length[parent]),
            "quality": np.where(is_reply, self.author_quality[author] + rng.normal(0, 0.6, m),
                                self.p_quality[parent]).astype(np.float32),
            "content_row": np.where(is_reply, len(self.p_author) + np.arange(m), parent),
        }
        for lb in SAFETY_LABELS:
            d[lb] = np.where(is_reply, own_labels[lb], self.p_labels[lb][parent])
        fa = self.e_kind == ENGAGEMENT_KINDS.index("follow_author")
        self.new_follows = (self.e_user[fa], self.p_author[self.e_post[fa]], self.e_time[fa])
        return d

    def _signal(self, truth: GroundTruth) -> dict[str, float]:
        """Mean over users of best / mean true engagement probability among eligible posts."""
        cfg, rng = self.cfg, np.random.default_rng(self.seed + 1)
        users = rng.choice(cfg.n_users, min(cfg.signal_users, cfg.n_users), replace=False)
        t_lo = cfg.start_time + int(0.75 * cfg.days) * DAY
        times = rng.integers(t_lo, cfg.start_time + cfg.days * DAY, len(users))
        ratios, like_ratios, sizes = [], [], []
        for u, t in zip(users, times, strict=True):
            rows = truth.eligible_rows(int(u), int(t))
            if len(rows) < 2:
                continue
            pr = truth.probabilities_rows(np.full(len(rows), u), rows, np.int64(t))
            engage = 1 - (1 - pr["like"]) * (1 - pr["repost"]) * (1 - pr["reply"])
            ratios.append(engage.max() / engage.mean())
            like_ratios.append(pr["like"].max() / pr["like"].mean())
            sizes.append(len(rows))
        if not ratios:
            return {}
        return {
            "best_over_mean_engagement": round(float(np.mean(ratios)), 3),
            "best_over_mean_like": round(float(np.mean(like_ratios)), 3),
            "eligible_posts_mean": round(float(np.mean(sizes)), 1),
            "signal_users": len(ratios),
        }

    # -- assembly -------------------------------------------------------------------------------

    def generate(self) -> World:
        t0 = time.perf_counter()
        stages = [("users", self._users), ("follow graph", self._follows), ("posts", self._posts),
                  ("sessions", self._sessions), ("impressions", self._impressions)]
        for name, fn in stages:
            self.progress(name, 0.0)
            fn()
            self.progress(name, 1.0)
        truth = self._truth()
        self._engagements(truth)
        self.progress("reposts, replies, follows", 0.0)
        extra = self._derived()
        truth = self._truth(extra)
        self.progress("reposts, replies, follows", 1.0)
        self.progress("signal", 0.0)
        signal = self._signal(truth)
        self.progress("signal", 1.0)
        self.progress("tables", 0.0)
        dataset = self._tables(extra, signal)
        self.progress("tables", 1.0)
        return World(dataset, truth, time.perf_counter() - t0)

    def _tables(self, extra: dict[str, np.ndarray], signal: dict[str, float]) -> Dataset:
        cfg = self.cfg
        n = cfg.n_users
        user_ids = np.arange(1, n + 1, dtype=np.int64)
        users = pa.table({
            "user_id": user_ids,
            "handle": pa.array([f"u{i}" for i in user_ids.tolist()]),
            "kind": pa.DictionaryArray.from_arrays(np.zeros(n, np.int8), ["person"]).cast(pa.string()),
            "created_at": self.user_created.astype(np.int64),
        })
        m0, m1 = len(self.p_author), len(extra["author"])
        kinds = np.r_[np.zeros(m0, np.int8), np.where(extra["is_reply"], 1, 2).astype(np.int8)]
        parent = np.r_[np.zeros(m0, np.int64), extra["parent"] + 1]
        posts = pa.table({
            "post_id": np.arange(1, m0 + m1 + 1, dtype=np.int64),
            "author_id": np.r_[self.p_author, extra["author"]] + 1,
            "created_at": np.r_[self.p_created, extra["created"]],
            "kind": pa.DictionaryArray.from_arrays(kinds, ["original", "reply", "repost"]).cast(pa.string()),
            "parent_id": pa.array(parent, mask=kinds == 0),
            "topic": np.r_[self.p_topic, extra["topic"]].astype(np.int16),
            "has_media": np.r_[self.p_media, extra["media"]],
            "has_link": np.r_[self.p_link, extra["link"]],
            "length": np.r_[self.p_length, extra["length"]].astype(np.int32),
            **{lb: np.r_[self.p_labels[lb], extra[lb]] for lb in SAFETY_LABELS},
        })
        fs, fd, ft = self.new_follows
        f_src = np.r_[self.f_src, fs]
        f_dst = np.r_[self.f_dst, fd]
        f_time = np.r_[self.f_created, ft]
        order = np.lexsort((f_dst, f_src))
        follows = pa.table({"src_id": f_src[order] + 1, "dst_id": f_dst[order] + 1,
                            "created_at": f_time[order].astype(np.int64)})
        engagements = pa.table({
            "user_id": self.e_user + 1,
            "post_id": self.e_post + 1,
            "kind": pa.DictionaryArray.from_arrays(self.e_kind, list(ENGAGEMENT_KINDS)).cast(pa.string()),
            "created_at": self.e_time,
            "value": self.e_value,
        })
        impressions = pa.table({
            "user_id": self.i_user + 1,
            "post_id": self.i_post + 1,
            "created_at": self.i_time.astype(np.int64),
            "session_id": self.i_session.astype(np.int64),
            "position": self.i_pos.astype(np.int16),
            "propensity": self.i_prop,
        })
        manifest = Manifest(
            name=f"world-{self.seed}",
            source="synthetic",
            generator=GENERATOR,
            seed=self.seed,
            split=SplitTimes(train_end=cfg.start_time + int(0.7 * cfg.days) * DAY,
                             valid_end=cfg.start_time + int(0.85 * cfg.days) * DAY),
            has_ground_truth=True,
            signal=signal,
            config=cfg.model_dump(),
        )
        return Dataset.build({"users": users, "posts": posts, "follows": follows,
                              "engagements": engagements, "impressions": impressions}, manifest)


def generate_world(config: WorldConfig, seed: int, progress: Progress | None = None,
                   preset: str | None = None) -> World:
    world = WorldGenerator(config, seed, progress).generate()
    if preset:
        world.dataset.manifest = world.dataset.manifest.model_copy(update={"preset": preset})
    return world
