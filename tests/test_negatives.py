"""Sampled negatives for datasets without impressions, and `train_all` on such a dataset end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from foryou.config import ForYouConfig, HeavyRankerConfig, TrainingConfig, apply_overrides
from foryou.data.dataset import Dataset
from foryou.data.importers import import_movielens
from foryou.data.lookup import rows_of
from foryou.data.split import history
from foryou.features import FeatureStore
from foryou.timeline.engine import RecommendationEngine
from foryou.training.heavy_ranker import HEAD_KINDS, build_rows, split_windows
from foryou.training.negatives import dedupe, sample_negatives, sampled_rows
from foryou.training.pipeline import train_all
from foryou.vocab import DAY, RANKER_HEADS

KINDS = tuple(k for h in RANKER_HEADS for k in HEAD_KINDS.get(h, (h,)))


@pytest.fixture(scope="module")
def world(tiny_world_dir: Path) -> tuple[Dataset, FeatureStore]:
    ds = Dataset.load(tiny_world_dir)
    return ds, FeatureStore(history(ds, ds.manifest.time_range[1] + 1))


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_negatives_existed_are_not_the_users_own_and_k_per_positive(world, sampling):
    ds, store = world
    rng = np.random.default_rng(0)
    n = 500
    prolific = np.bincount(store.author_row).argmax()  # half the draws for the most prolific author
    users = np.where(rng.random(n) < 0.5, prolific, rng.integers(0, len(store.user_ids), n))
    times = np.sort(store.created_at)[len(store.created_at) // 2:][rng.integers(0, len(store.created_at) // 2, n)] + 1
    u, p, t = sample_negatives(store, users, times, 4, np.random.default_rng(1), sampling, ds.engagements)
    assert len(u) == 4 * n  # plenty of posts before each time: nothing dropped
    assert (store.created_at[p] < t).all()
    assert (store.author_row[p] != u).all()
    np.testing.assert_array_equal(np.repeat(users, 4), u)
    np.testing.assert_array_equal(np.repeat(times, 4), t)
    assert len(np.unique(p)) > 100  # drawn across the catalog, not one post
    again = sample_negatives(store, users, times, 4, np.random.default_rng(1), sampling, ds.engagements)
    other = sample_negatives(store, users, times, 4, np.random.default_rng(2), sampling, ds.engagements)
    np.testing.assert_array_equal(p, again[1])
    assert (p != other[1]).mean() > 0.5


def test_popularity_sampling_favours_engaged_posts(world):
    ds, store = world
    users = np.zeros(4000, np.int64)
    t = np.full(4000, ds.manifest.time_range[1] + 1)
    _, uniform, _ = sample_negatives(store, users, t, 1, np.random.default_rng(0), "uniform")
    _, popular, _ = sample_negatives(store, users, t, 1, np.random.default_rng(0), "popularity", ds.engagements)
    counts = np.bincount(rows_of(store.post_id, ds.engagements["post_id"].to_numpy()), minlength=len(store.post_id))
    assert counts[popular].mean() > 2 * counts[uniform].mean()  # size-biased: E[c²]/E[c] against E[c]


def test_nothing_to_draw_before_the_first_post_is_dropped(world):
    _, store = world
    first = int(store.created_at.min())
    _, p, t = sample_negatives(store, np.array([0, 1]), np.array([first, first + 10**9]), 3,
                               np.random.default_rng(0))
    assert (t == first + 10**9).all() and len(p) == 3


def test_dedupe_keeps_the_earliest_row_of_a_pair():
    u, p, t = dedupe(np.array([1, 1, 2, 1]), np.array([5, 5, 5, 6]), np.array([30, 10, 20, 5]), 100)
    assert list(zip(u.tolist(), p.tolist(), t.tolist(), strict=True)) == [(1, 6, 5), (1, 5, 10), (2, 5, 20)]


def test_sampled_rows_hold_every_engagement_and_k_negatives(world):
    ds, store = world
    window = split_windows(ds)[1]
    u, p, t = sampled_rows(ds, store, window, KINDS, k=4, seed=3)
    n = len(store.post_id)
    e = ds.engagements.filter(np.asarray(ds.engagements["created_at"].to_numpy() < window.end))
    e_key = rows_of(store.user_ids, e["user_id"].to_numpy()) * n + rows_of(store.post_id, e["post_id"].to_numpy())
    e_t = e["created_at"].to_numpy()
    in_window = e_t >= window.start
    first = {}
    for key, time in sorted(zip(e_key[in_window].tolist(), e_t[in_window].tolist(), strict=True), reverse=True):
        first[key] = time  # the earliest engagement of each pair in the window
    keys = (u * n + p).tolist()
    assert len(set(keys)) == len(keys)  # one row per (user, post)
    rows = dict(zip(keys, t.tolist(), strict=True))
    assert all(rows.get(key) == time for key, time in first.items())  # every engaged pair, at its first time
    negatives = set(keys) - set(first)
    assert not negatives & set(e_key.tolist())  # never a post the user engages with up to the window's end
    assert 3.5 * len(first) < len(negatives) <= 4 * len(first)  # k per positive, less the rare repeats
    assert (np.diff(t) >= 0).all() and (t >= window.start).all() and (t < window.end).all()
    again = sampled_rows(ds, store, window, KINDS, k=4, seed=3)
    for a, b in zip((u, p, t), again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(p, sampled_rows(ds, store, window, KINDS, k=4, seed=4)[1])


def test_build_rows_without_impressions_labels_from_engagements_before_the_window_end(world):
    ds, store = world
    no_imp = Dataset({**ds.tables, "impressions": ds.impressions.slice(0, 0)}, ds.manifest, ds.path)
    window = split_windows(ds)[0]
    rows = build_rows(no_imp, store, window, negatives=4, seed=0)
    like = rows.y[:, RANKER_HEADS.index("like")]
    assert 0.15 < rows.y.max(1).mean() < 0.3  # ≈ 1 / (k + 1): every engagement + 4 negatives each
    e = window.rows(ds, "engagements")
    liked = e.filter(np.asarray(e["kind"].to_numpy(zero_copy_only=False) == "like"))
    keys = set(zip(rows_of(store.user_ids, liked["user_id"].to_numpy()).tolist(),
                   rows_of(store.post_id, liked["post_id"].to_numpy()).tolist(), strict=True))
    row_keys = list(zip(rows.user_row.tolist(), rows.post_row.tolist(), strict=True))
    assert all(like[i] == 1 for i, k in enumerate(row_keys) if k in keys)
    # a label never comes from after the window: a like at its end leaves a negative row negative
    neg = int(np.flatnonzero(rows.y.max(1) == 0)[0])
    late = pa.table({"user_id": [int(store.user_ids[rows.user_row[neg]])],
                     "post_id": [int(store.post_id[rows.post_row[neg]])],
                     "kind": ["like"], "created_at": [int(window.end)], "value": [1.0]})
    e_late = pa.concat_tables([ds.engagements, late.cast(ds.engagements.schema)])
    again = build_rows(Dataset({**no_imp.tables, "engagements": e_late}, ds.manifest), store, window)
    np.testing.assert_array_equal(again.y, rows.y)


# -- end to end: a MovieLens-format catalog (no impressions, no follows, no safety labels) -----------


def _write_catalog(root: Path, n_users: int = 120, n_items: int = 80, seed: int = 0) -> Path:
    """u.data / u.item in MovieLens-100K's format: popular items get more, and better, ratings."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    appeal = rng.normal(size=n_items)
    lines = []
    for user in range(1, n_users + 1):
        n = int(rng.integers(10, 30))
        items = rng.choice(n_items, n, replace=False, p=np.exp(appeal) / np.exp(appeal).sum())
        for item in items:
            rating = int(np.clip(np.round(3 + appeal[item] + rng.normal(scale=0.8)), 1, 5))
            lines.append(f"{user}\t{item + 1}\t{rating}\t{880_000_000 + int(rng.integers(0, 90 * DAY))}\n")
    (root / "u.data").write_text("".join(lines))
    genres = ["0"] * 19
    (root / "u.item").write_bytes("".join(
        f"{i}|Film {i} (1995)|01-Jan-1995||http://x/{i}|{'|'.join([*genres[:i % 19], '1', *genres[i % 19 + 1:]])}\n"
        for i in range(1, n_items + 1)).encode("latin-1"))
    return root


def test_train_all_without_impressions_registers_and_serves_once_promoted(tmp_path: Path):
    path = tmp_path / "catalog"
    import_movielens(_write_catalog(tmp_path / "src")).write(path)
    config = ForYouConfig(training=TrainingConfig(heavy_ranker=HeavyRankerConfig(
        epochs=2, batch_size=512, negatives_per_positive=3)))
    wide = ForYouConfig.model_validate({"timeline": {"sources": {
        "max_age_hours": 100_000, "in_network_hours": 100_000, "in_network_hours_light": 100_000,
        "trending_hours": 100_000}}})
    as_of = Dataset.load(path).manifest.split.valid_end

    # By default models trained against sampled negatives are registered, not served (they lose to the
    # heuristic rankers on the real datasets): the engine keeps its heuristic heavy ranker.
    train_all(path, config, only="heavy_ranker")
    engine = RecommendationEngine.open(path, wide, as_of=as_of)
    assert "heuristic" in engine.model_versions()["heavy_ranker"]
    engine.close()

    results = train_all(path, config, promote=True)
    heavy = results["heavy_ranker"]
    assert heavy["version"] == 2
    assert heavy["negatives"]["per_positive"] == 3 and "sampled negatives" in heavy["negatives"]["note"]
    assert heavy["test"]["click"]["auc"] > 0.6 and heavy["test"]["like"]["auc"] > 0.6
    # what this data cannot teach is skipped with a reason, not trained on nothing
    assert "skipped" in results["realgraph"]  # each user rates a movie once: no next-window interaction
    assert "skipped" in results["light_ranker_in_network"]  # no follows
    assert results["light_ranker_out_of_network"]["version"] == 1

    # Phoenix learns from the same engagements (softmax over sampled negatives) and, promoted, takes the slot
    assert results["phoenix"]["fit"]["recipe"].startswith("engagements + sampled negatives")
    assert results["phoenix"]["test"]["click"]["auc"] > 0.6
    engine = RecommendationEngine.open(path, wide, as_of=as_of)
    assert engine.model_versions()["heavy_ranker"].startswith("phoenix v1 (promoted)")
    engine.close()
    engine = RecommendationEngine.open(path, apply_overrides(wide, {"timeline": {"ranking": {"model": "masknet"}}}),
                                       as_of=as_of)
    assert engine.model_versions()["heavy_ranker"].startswith("v2 (promoted)")
    page = engine.recommend(1, n=10, explain=True)
    assert len(page.items) > 0
    assert page.models["heavy_ranker"].startswith("v2 (promoted)") and "heuristic" not in page.models["heavy_ranker"]
    engine.close()
