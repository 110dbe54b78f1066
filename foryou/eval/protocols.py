"""Evaluation protocols: when the page is served, to whom, and what counts as a hit.

- `temporal` (default): the page each test user would be served at the test window's start
  (`manifest.split.valid_end`); every train-side structure is built from `history(dataset, as_of)`;
  ground truth = the user's positive engagements in the test window on posts that existed at
  `as_of` (a page served then cannot hold a later post, for any method; how many were dropped is noted).
- `minirecsys`: the reference mimic's protocol exactly — engagements sorted by time, the first
  int(0.8·N) are train, the rest test; ground truth = each user's set of test post ids; evaluated
  users = users with ≥ 2 test interactions, sorted by id, the first 100; K ∈ {5, 10, 20}.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from foryou.data.dataset import Dataset
from foryou.data.split import History, history
from foryou.errors import ForYouError
from foryou.vocab import POSITIVE

PROTOCOLS = ("temporal", "minirecsys")


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
    train: History
    notes: list[str] = field(default_factory=list)

    @property
    def n_relevant(self) -> np.ndarray:
        return np.bincount(self.truth_user, minlength=len(self.users))

    def truth_of(self, i: int) -> np.ndarray:
        return self.truth_post[self.truth_user == i]


def _pairs(user: np.ndarray, post: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (user, post) pairs, sorted by user then post."""
    if len(user) == 0:
        return user.astype(np.int64), post.astype(np.int64)
    pairs = np.unique(np.stack([user, post], axis=1), axis=0)
    return pairs[:, 0], pairs[:, 1]


def temporal(dataset: Dataset, positive_kinds: tuple[str, ...] = POSITIVE, k_values=(5, 10, 20),
             max_users: int | None = None, seed: int = 0) -> EvalSplit:
    as_of = int(dataset.manifest.split.valid_end)
    e = dataset.engagements
    test = e.filter(pc.and_(pc.greater_equal(e["created_at"], as_of),
                            pc.is_in(e["kind"], pa.array(list(positive_kinds)))))
    posts = dataset.posts
    existing = posts.filter(pc.less(posts["created_at"], as_of))["post_id"]
    reachable = pc.is_in(test["post_id"], existing).to_numpy(zero_copy_only=False)
    _, post = _pairs(test["user_id"].to_numpy(), test["post_id"].to_numpy())
    r_user, r_post = _pairs(test["user_id"].to_numpy()[reachable], test["post_id"].to_numpy()[reachable])
    users = np.unique(r_user)
    notes = [f"test window from {as_of} (manifest split.valid_end); positives = {', '.join(positive_kinds)}",
             f"{len(r_post):,} of {len(post):,} test-window positive (user, post) pairs are on posts that "
             f"existed at the split (the rest are on later posts no page served then can hold)"]
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
        notes.append(f"{max_users:,} test users sampled (seed {seed})")
    keep = np.isin(r_user, users)
    return EvalSplit("temporal", as_of, users, np.searchsorted(users, r_user[keep]), r_post[keep],
                     tuple(k_values), tuple(positive_kinds), history(dataset, as_of), notes)


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


def make_split(dataset: Dataset, protocol: str, max_users: int | None = None, seed: int = 0) -> EvalSplit:
    if protocol == "temporal":
        return temporal(dataset, max_users=max_users, seed=seed)
    if protocol == "minirecsys":
        return minirecsys(dataset)
    raise EvalError(f"unknown protocol {protocol!r}; one of {', '.join(PROTOCOLS)}")
