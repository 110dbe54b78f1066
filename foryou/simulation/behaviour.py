"""How simulated users behave: when they log in, and what they do with a page.

Sessions: Poisson(activity) per user per day (the ground truth's latent sessions per day), at hours
drawn from the world's daily rhythm. On a page, every head of the ground truth is sampled for every
post (engagements, dwell seconds, negative feedback, follows) with the seeded RNG, exactly as the
world generator samples them; the user reads top-down and stops after a post with a probability
that depends on what they did with it (the ground truth has no session model, so these three
numbers are the simulation's assumption: `simulation.behaviour` in the config tree). Session depth
therefore rewards a feed whose posts users engage with, and punishes one that draws negative feedback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from foryou.config import BehaviourConfig
from foryou.data.world.generator import RHYTHM
from foryou.data.world.truth import GroundTruth
from foryou.vocab import ENGAGEMENT_KINDS, HOUR, NEGATIVE, POSITIVE

SLOT_SECONDS = 6  # time between two posts of a page, as in the world's impressions


def day_sessions(activity: np.ndarray, user_rows: np.ndarray, day_start: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(user rows, session start times) of one day, in time order."""
    counts = rng.poisson(activity[user_rows])
    users = np.repeat(user_rows, counts)
    t = day_start + rng.choice(24, len(users), p=RHYTHM) * HOUR + rng.integers(0, HOUR, len(users))
    order = np.argsort(t, kind="stable")
    return users[order], t[order].astype(np.int64)


@dataclass
class PageActions:
    """What the user did on one page, for the posts they viewed (the first `depth`)."""

    depth: int
    times: np.ndarray  # impression time per viewed post
    kinds: list[np.ndarray]  # per viewed post: indices into ENGAGEMENT_KINDS of the actions taken
    values: list[np.ndarray]  # per viewed post: the actions' values (dwell seconds, else 1)
    probs: dict[str, np.ndarray]  # ground-truth probabilities for every post of the page
    reached_end: bool


def act(truth: GroundTruth, user_row: int, post_rows: np.ndarray, t: int, cfg: BehaviourConfig,
        rng: np.random.Generator) -> PageActions:
    """Sample every head for every post of the page, then where the user stops reading."""
    n = len(post_rows)
    times = t + SLOT_SECONDS * np.arange(n, dtype=np.int64)
    probs = truth.probabilities_rows(np.full(n, user_row), post_rows, times)
    hits = np.zeros((n, len(ENGAGEMENT_KINDS)), dtype=bool)
    values = np.ones((n, len(ENGAGEMENT_KINDS)), dtype=np.float32)
    for j, kind in enumerate(ENGAGEMENT_KINDS):
        if kind == "dwell":
            secs = np.exp(truth.dwell_log_mu(probs["dwell"]) + truth.params.dwell_sigma * rng.standard_normal(n))
            hits[:, j] = secs >= truth.params.dwell_threshold_s
            values[:, j] = secs
        else:
            hits[:, j] = rng.random(n) < probs[kind]
    positive = hits[:, [ENGAGEMENT_KINDS.index(k) for k in (*POSITIVE, "click")]].any(1)
    negative = hits[:, [ENGAGEMENT_KINDS.index(k) for k in NEGATIVE]].any(1)
    q = np.where(negative, cfg.stop_negative, np.where(positive, cfg.stop_engaged, cfg.stop_base))
    stops = np.flatnonzero(rng.random(n) < q)
    depth = int(stops[0]) + 1 if len(stops) else n
    kinds = [np.flatnonzero(hits[i]) for i in range(depth)]
    return PageActions(depth=depth, times=times[:depth], kinds=kinds,
                       values=[values[i, k] for i, k in enumerate(kinds)], probs=probs,
                       reached_end=not len(stops))
