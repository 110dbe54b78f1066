"""Evaluation protocols: when the page is served, to whom, and what counts as a hit.

- `temporal` (default): the page each test user would be served at the test window's start
  (`manifest.split.valid_end`); every train-side structure is built from `history(dataset, as_of)`;
  ground truth = the user's positive engagements in the test window on posts that existed at
  `as_of` (a page served then cannot hold a later post, for any method; how many were dropped is noted).
- `leave-last-out`: the sequential-recommendation convention. Each user's last positive engagement
  (latest time, then highest post id) is the test item; every row of that (user, post) pair is removed
  (any kind, impressions too) and the rest is history. The page is served at the end of the data.
- `random`: a seeded random 20 % of distinct positive (user, post) pairs held out, removed the same
  way; the page is served at the end of the data.
- `minirecsys`: the reference mimic's protocol exactly — engagements sorted by time, the first
  int(0.8·N) are train, the rest test; ground truth = each user's set of test post ids; evaluated
  users = users with ≥ 2 test interactions, sorted by id, the first 100; K ∈ {5, 10, 20}.

Segments: a user is cold with no positive engagement in the history, warm with ≥ 5 distinct positive
posts there (`SEGMENTS`). `select_users` keeps one segment or a seeded sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.dataset import Dataset
from foryou.data.split import History, history
from foryou.errors import ForYouError
from foryou.vocab import POSITIVE

PROTOCOLS = ("temporal", "leave-last-out", "random", "minirecsys")
HELD_OUT = ("leave-last-out", "random")  # protocols that remove rows instead of cutting at an instant
RANDOM_SHARE = 0.2
WARM_MIN = 5
SEGMENTS = {"cold": "no positive engagement before the split",
            "warm": f"≥ {WARM_MIN} distinct positively engaged posts before the split"}


class EvalError(ForYouError, ValueError):
    """An evaluation that cannot be run as asked: an unknown protocol or baseline, too little data."""


@dataclass
class EvalSplit:
    """Who is evaluated at which instant, against which ground truth."""

    protocol: str
    as_of: int
    users: np.ndarray  # evaluated user ids, sorted
    truth_user: np.ndarray  # index into `users`, one per relevant (user, post) pair
    truth_post: np.ndarray  # post id of each pair
    k_values: tuple[int, ...]
    positive_kinds: tuple[str, ...]
    train: History  # everything a method may learn from (held-out rows removed where the protocol holds out)
    notes: list[str] = field(default_factory=list)

    @property
    def n_relevant(self) -> np.ndarray:
        return np.bincount(self.truth_user, minlength=len(self.users))

    def truth_of(self, i: int) -> np.ndarray:
        return self.truth_post[self.truth_user == i]

    def prior_positives(self) -> np.ndarray:
        """Per evaluated user: distinct posts positively engaged with in the history (the segment key)."""
        e = self.train.engagements
        e = e.filter(pc.is_in(e["kind"], pa.array(list(self.positive_kinds))))
        u, _ = _pairs(e["user_id"].to_numpy(), e["post_id"].to_numpy())
        ids, counts = np.unique(u, return_counts=True)
        found = np.isin(self.users, ids)
        out = np.zeros(len(self.users), np.int64)
        out[found] = counts[np.searchsorted(ids, self.users[found])]
        return out

    def segment_mask(self, segment: str) -> np.ndarray:
        prior = self.prior_positives()
        if segment == "cold":
            return prior == 0
        if segment == "warm":
            return prior >= WARM_MIN
        return np.ones(len(self.users), bool)

    def subset(self, rows: np.ndarray) -> EvalSplit:
        """The same split restricted to `rows` (a boolean mask over `users`)."""
        rows = np.asarray(rows, bool)
        new_index = np.cumsum(rows) - 1
        keep = rows[self.truth_user]
        return replace(self, users=self.users[rows], truth_user=new_index[self.truth_user[keep]],
                       truth_post=self.truth_post[keep], notes=list(self.notes))


def _pairs(user: np.ndarray, post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, post) pairs, sorted by user then post."""
    if len(user) == 0:
        return user.astype(np.int64), post.astype(np.int64)
    pairs = np.unique(np.stack([user, post], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def temporal(dataset: Dataset, positive_kinds: tuple[str, ...] = POSITIVE, k_values=(5, 10, 20),
             max_users: int | None = None, seed: int = 0, as_of: int | None = None,
             end: int | None = None) -> EvalSplit:
    """The page served at `as_of` (default the test window's start); truth = positives in [as_of, end)."""
    as_of = int(dataset.manifest.split.valid_end) if as_of is None else int(as_of)
    e = dataset.engagements
    keep = pc.and_(pc.greater_equal(e["created_at"], as_of), pc.is_in(e["kind"], pa.array(list(positive_kinds))))
    if end is not None:
        keep = pc.and_(keep, pc.less(e["created_at"], int(end)))
    test = e.filter(keep)
    posts = dataset.posts
    existing = posts.filter(pc.less(posts["created_at"], as_of))["post_id"]
    reachable = pc.is_in(test["post_id"], existing).to_numpy(zero_copy_only=False)
    _, post = _pairs(test["user_id"].to_numpy(), test["post_id"].to_numpy())
    r_user, r_post = _pairs(test["user_id"].to_numpy()[reachable], test["post_id"].to_numpy()[reachable])
    users = np.unique(r_user)
    window = f"[{as_of}, {end})" if end is not None else f"from {as_of} (manifest split.valid_end)"
    notes = [f"test window {window}; positives = {', '.join(positive_kinds)}",
             f"{len(r_post):,} of {len(post):,} test-window positive (user, post) pairs are on posts that "
             f"existed at the split (the rest are on later posts no page served then can hold)"]
    split = EvalSplit("temporal", as_of, users, np.searchsorted(users, r_user), r_post, tuple(k_values),
                      tuple(positive_kinds), history(dataset, as_of), notes)
    return sample_users(split, max_users, seed)


def _held_out_split(dataset: Dataset, protocol: str, held_user: np.ndarray, held_post: np.ndarray,
                    positive_kinds: tuple[str, ...], k_values, notes: list[str]) -> EvalSplit:
    """Remove every row of the held-out (user, post) pairs (engagements of any kind, impressions) and serve
    at the end of the data: the held-out pairs are the truth."""
    keys = np.unique(held_user.astype(np.int64) << 32 | held_post.astype(np.int64))
    tables = dict(dataset.tables)
    removed = 0
    for name in ("engagements", "impressions"):
        t = tables[name]
        k = t["user_id"].to_numpy().astype(np.int64) << 32 | t["post_id"].to_numpy().astype(np.int64)
        drop = np.isin(k, keys)
        removed += int(drop.sum())
        tables[name] = t.filter(pa.array(~drop))
    as_of = int(dataset.manifest.time_range[1]) + 1
    remaining = Dataset(tables, dataset.manifest, dataset.path)
    users = np.unique(held_user)
    notes = [*notes, f"{len(keys):,} held-out (user, post) pairs; {removed:,} rows of them removed from "
                     f"everything the engine and the baselines see; pages served at the end of the data ({as_of})"]
    order = np.lexsort((held_post, held_user))
    return EvalSplit(protocol, as_of, users, np.searchsorted(users, held_user[order]), held_post[order],
                     tuple(k_values), tuple(positive_kinds), history(remaining, as_of), notes)


def _positive_rows(dataset: Dataset, positive_kinds: tuple[str, ...]) -> pa.Table:
    e = dataset.engagements
    return e.filter(pc.is_in(e["kind"], pa.array(list(positive_kinds))))


def leave_last_out(dataset: Dataset, positive_kinds: tuple[str, ...] = POSITIVE, k_values=(5, 10, 20)) -> EvalSplit:
    e = _positive_rows(dataset, positive_kinds)
    if e.num_rows == 0:
        raise EvalError("no positive engagement to hold out")
    u, p, t = e["user_id"].to_numpy(), e["post_id"].to_numpy(), e["created_at"].to_numpy()
    order = np.lexsort((p, t, u))  # by user, then time, then post id: the last row per user is its test item
    u, p = u[order], p[order]
    last = np.r_[u[1:] != u[:-1], True]
    notes = [f"leave-last-out: each user's last positive engagement ({', '.join(positive_kinds)}) is the test item"]
    return _held_out_split(dataset, "leave-last-out", u[last], p[last], positive_kinds, k_values, notes)


def random_split(dataset: Dataset, positive_kinds: tuple[str, ...] = POSITIVE, k_values=(5, 10, 20),
                 seed: int = 0, share: float = RANDOM_SHARE) -> EvalSplit:
    e = _positive_rows(dataset, positive_kinds)
    u, p = _pairs(e["user_id"].to_numpy(), e["post_id"].to_numpy())
    held = np.random.default_rng([seed, 20]).random(len(u)) < share
    if not held.any():
        raise EvalError("no positive engagement to hold out")
    notes = [f"random: {share:.0%} of distinct positive (user, post) pairs held out (seed {seed})"]
    return _held_out_split(dataset, "random", u[held], p[held], positive_kinds, k_values, notes)


def minirecsys(dataset: Dataset, n_users: int = 100, min_test: int = 2) -> EvalSplit:
    e = dataset.engagements
    t = e["created_at"].to_numpy()
    order = np.argsort(t, kind="stable")
    cut = int(0.8 * len(order))
    if cut >= len(order):
        raise EvalError("too few engagements for an 80/20 split")
    as_of = int(t[order[cut]])
    if cut > 0 and t[order[cut - 1]] == as_of:  # a tie across the cut cannot be expressed as one instant
        raise EvalError("the 80 % cut falls inside a group of equal timestamps")
    test = order[cut:]
    user = e["user_id"].to_numpy()[test]
    post = e["post_id"].to_numpy()[test]
    ids, counts = np.unique(user, return_counts=True)  # interactions, not distinct posts (the mimic's count)
    users = np.sort(ids[counts >= min_test])[:n_users]
    keep = np.isin(user, users)
    t_user, t_post = _pairs(user[keep], post[keep])
    kinds = tuple(sorted(set(e["kind"].to_numpy(zero_copy_only=False)[test].tolist())))
    notes = [f"minirecsys protocol: {cut:,} train / {len(test):,} test interactions (first int(0.8·N) by time); "
             f"split instant {as_of}", f"{len(users)} users with ≥ {min_test} test interactions, the first by id",
             f"ground truth = every test interaction ({', '.join(kinds)})"]
    return EvalSplit("minirecsys", as_of, users, np.searchsorted(users, t_user), t_post, (5, 10, 20), kinds,
                     history(dataset, as_of), notes)


def sample_users(split: EvalSplit, max_users: int | None, seed: int) -> EvalSplit:
    """A seeded sample of `max_users` evaluated users (all of them when there are fewer)."""
    if max_users is None or len(split.users) <= max_users:
        return split
    chosen = np.sort(np.random.default_rng(seed).choice(split.users, max_users, replace=False))
    out = split.subset(np.isin(split.users, chosen))
    out.notes.append(f"{max_users:,} test users sampled (seed {seed})")
    return out


def select_users(split: EvalSplit, segment: str) -> EvalSplit:
    """Only the users of one segment (`all` keeps everybody)."""
    if segment == "all":
        return split
    if segment not in SEGMENTS:
        raise EvalError(f"unknown user segment {segment!r}; one of all, {', '.join(SEGMENTS)} or a number")
    out = split.subset(split.segment_mask(segment))
    out.notes.append(f"only {segment} users evaluated ({SEGMENTS[segment]}): {len(out.users):,}")
    return out


def make_split(dataset: Dataset, protocol: str, max_users: int | None = None, seed: int = 0,
               segment: str = "all") -> EvalSplit:
    if protocol == "temporal":
        split = temporal(dataset)
    elif protocol == "leave-last-out":
        split = leave_last_out(dataset)
    elif protocol == "random":
        split = random_split(dataset, seed=seed)
    elif protocol == "minirecsys":
        split = minirecsys(dataset)
    else:
        raise EvalError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
    return sample_users(select_users(split, segment), max_users, seed)


def validation_split(split: EvalSplit, dataset: Dataset, max_users: int | None, seed: int) -> EvalSplit:
    """Where baselines are tuned, from what the test split's methods may see only: the temporal protocol's
    validation window (manifest train_end → valid_end), or the held-out protocol applied again to the history
    (each user's second-to-last positive; a further random 20 %)."""
    if split.protocol in ("temporal", "minirecsys"):
        s = dataset.manifest.split
        start = int(s.train_end) if split.protocol == "temporal" else None
        if start is None or start >= split.as_of:
            start = int(np.quantile(split.train.engagements["created_at"].to_numpy(), 0.8)) \
                if split.train.engagements.num_rows else split.as_of
        val = temporal(split.train, split.positive_kinds, split.k_values, as_of=start, end=split.as_of)
    elif split.protocol == "leave-last-out":
        val = leave_last_out(split.train, split.positive_kinds, split.k_values)
    else:
        val = random_split(split.train, split.positive_kinds, split.k_values, seed=seed + 1)
    return sample_users(val, max_users, seed)
