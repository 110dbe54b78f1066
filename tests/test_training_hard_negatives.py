"""Hard negatives for positives-only data (foryou.training.negatives, sampling "hard"): drawn from what the
engine could have served the user at that instant — posts alive then, half by their recent engagements —
never a post created after the row's time, never the user's own, never a post the user engages with."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from foryou.config import ForYouConfig
from foryou.data.dataset import Dataset
from foryou.data.lookup import member, rows_of
from foryou.data.split import Window, history
from foryou.features import FeatureStore
from foryou.training.heavy_ranker import HEAD_KINDS, split_windows
from foryou.training.negatives import HardWindows, sample_negatives, sampled_rows
from foryou.vocab import HOUR, POSITIVE, RANKER_HEADS

KINDS = tuple(k for h in RANKER_HEADS for k in HEAD_KINDS.get(h, (h,)))
WINDOWS = HardWindows(max_age=48 * HOUR, trending=24 * HOUR)


@pytest.fixture(scope="module")
def world(tiny_world_dir: Path) -> tuple[Dataset, FeatureStore]:
    ds = Dataset.load(tiny_world_dir)
    return ds, FeatureStore(history(ds, ds.manifest.time_range[1] + 1))


def _times(store: FeatureStore, n: int, seed: int = 0) -> np.ndarray:
    created = np.sort(store.created_at)
    return created[len(created) // 2:][np.random.default_rng(seed).integers(0, len(created) // 2, n)] + 1


def test_hard_negatives_are_alive_at_the_label_time_and_not_the_users_own(world):
    ds, store = world
    n = 2000
    users = np.random.default_rng(1).integers(0, len(store.user_ids), n)
    t = _times(store, n)
    u, p, nt = sample_negatives(store, users, t, 3, np.random.default_rng(2), "hard", ds.engagements, hard=WINDOWS)
    assert len(u) > 0.95 * 3 * n  # a feed: nearly every instant has alive posts to draw from
    assert (store.created_at[p] < nt).all()  # never a post created after the label's time
    assert (store.created_at[p] >= nt - WINDOWS.max_age).all()  # only what the TooOldFilter lets through
    assert (store.author_row[p] != u).all()
    pairs = np.unique(np.stack([users, t], 1), axis=0)  # every row keeps a (user, time) it was asked for
    assert member(pairs[:, 0] * (1 << 40) + pairs[:, 1], u * (1 << 40) + nt)[0].all()
    with pytest.raises(ValueError, match="windows"):
        sample_negatives(store, users, t, 1, np.random.default_rng(0), "hard", ds.engagements)


def test_hard_negatives_favour_what_trended_then(world):
    ds, store = world
    n = 4000
    users = np.zeros(n, np.int64)
    t = _times(store, n, seed=5)
    _, uniform, ut = sample_negatives(store, users, t, 1, np.random.default_rng(0), "uniform")
    _, hard, ht = sample_negatives(store, users, t, 1, np.random.default_rng(0), "hard", ds.engagements,
                                   hard=WINDOWS)
    e = ds.engagements.filter(pc.is_in(ds.engagements["kind"], pa.array(list(POSITIVE))))
    e_post = rows_of(store.post_id, e["post_id"].to_numpy())
    e_t = e["created_at"].to_numpy()

    def recent(post: np.ndarray, at: np.ndarray) -> float:  # engagements in the trending window before each row
        return float(np.mean([np.count_nonzero((e_post == q) & (e_t < s) & (e_t >= s - WINDOWS.trending))
                              for q, s in zip(post[:400].tolist(), at[:400].tolist(), strict=True)]))

    assert recent(hard, ht) > 2 * recent(uniform, ut)
    # and younger posts than a uniform draw over everything that existed
    assert np.median(ht - store.created_at[hard]) < np.median(ut - store.created_at[uniform])


@pytest.mark.parametrize("window", [0, 1])
def test_hard_rows_never_hold_an_engaged_post_as_a_negative(world, window):
    ds, store = world
    w: Window = split_windows(ds)[window]
    u, p, t = sampled_rows(ds, store, w, KINDS, 4, seed=0, sampling="hard", hard=WINDOWS)
    e = ds.engagements.filter(pc.is_in(ds.engagements["kind"], pa.array(list(KINDS))))
    if w.end is not None:
        e = e.filter(pc.less(e["created_at"], w.end))
    n = len(store.post_id)
    e_key = rows_of(store.user_ids, e["user_id"].to_numpy()) * n + rows_of(store.post_id, e["post_id"].to_numpy())
    engaged = np.isin(u * n + p, e_key)
    assert engaged.any() and (~engaged).sum() > 2 * engaged.sum()  # positives and their negatives
    neg_u, neg_p, neg_t = u[~engaged], p[~engaged], t[~engaged]
    assert (store.created_at[neg_p] < neg_t).all() and (store.created_at[neg_p] >= neg_t - WINDOWS.max_age).all()
    assert (store.author_row[neg_p] != neg_u).all()
    # an engaged (user, post) appears once, at its first engagement: a positive, never also a negative
    first = {}
    for key, when in zip(e_key.tolist(), e["created_at"].to_numpy().tolist(), strict=True):
        first[key] = min(first.get(key, when), when)
    keys = (u * n + p)[engaged]
    assert len(np.unique(keys)) == len(keys)
    assert all(first[k] == s for k, s in zip(keys.tolist(), t[engaged].tolist(), strict=True))


def test_hard_sampling_is_a_config_choice():
    cfg = ForYouConfig.model_validate({"training": {"heavy_ranker": {"negative_sampling": "hard"}}})
    assert cfg.training.heavy_ranker.negative_sampling == "hard"
    with pytest.raises(ValueError):
        ForYouConfig.model_validate({"training": {"heavy_ranker": {"negative_sampling": "hardest"}}})
