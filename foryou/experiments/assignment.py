"""Deterministic assignment: a user's place in a layer and in an experiment's arms is a hash of
(user id, salt) — no state, the same answer in every process, vectorised over user arrays.

The hash is splitmix64 (a well-mixed 64-bit finaliser) over the user id and a 64-bit digest of the
salt; its top 53 bits give a uniform number in [0, 1). The layer's draw decides whether the user is
in an experiment (its [offset, offset + traffic) range); a second draw with the experiment's own
salt picks the arm by weight, so arms stay balanced whatever the traffic share.
"""

from __future__ import annotations

import hashlib

import numpy as np

from foryou.experiments.definition import Experiment

_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _splitmix(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def salt_digest(salt: str) -> np.uint64:
    return np.uint64(int.from_bytes(hashlib.blake2b(salt.encode(), digest_size=8).digest(), "little"))


def unit_hash(user_ids: np.ndarray | int, salt: str) -> np.ndarray:
    """Uniform [0, 1) per user, a pure function of (user id, salt)."""
    u = np.atleast_1d(np.asarray(user_ids)).astype(np.int64).view(np.uint64)
    h = _splitmix(_splitmix(u) ^ salt_digest(salt))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def assign(experiment: Experiment, user_ids: np.ndarray | int) -> np.ndarray:
    """Arm index per user (−1: not in the experiment, or the experiment is stopped)."""
    users = np.atleast_1d(np.asarray(user_ids))
    out = np.full(len(users), -1, dtype=np.int64)
    if experiment.status != "running":
        return out
    place = unit_hash(users, f"layer:{experiment.layer}")
    inside = (place >= experiment.offset) & (place < experiment.offset + experiment.traffic)
    weights = np.array([a.weight for a in experiment.arms], dtype=np.float64)
    edges = np.cumsum(weights / weights.sum())
    draw = unit_hash(users[inside], f"experiment:{experiment.salt}")
    out[inside] = np.minimum(np.searchsorted(edges, draw, side="right"), len(weights) - 1)
    return out
