"""Honest evaluation: user segments, the leave-last-out and random protocols (held-out rows never reach the
engine or the baselines), EASE against its closed form, tuning on validation, and deterministic baselines."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from scipy import sparse

from foryou.data.dataset import Dataset
from foryou.eval.baselines import build_catalog, make_baseline
from foryou.eval.ease import choose_items
from foryou.eval.protocols import WARM_MIN, leave_last_out, make_split, random_split, temporal, validation_split
from foryou.eval.system import serve_pages
from foryou.eval.tuning import tune, validation_ndcg
from foryou.graph.related import ease_weights
from foryou.timeline.engine import RecommendationEngine
from foryou.vocab import POSITIVE


@pytest.fixture(scope="module")
def ds(tiny_world_dir) -> Dataset:
    return Dataset.load(tiny_world_dir)


def _keys(table: pa.Table) -> np.ndarray:
    return table["user_id"].to_numpy().astype(np.int64) << 32 | table["post_id"].to_numpy().astype(np.int64)


def _prior(ds: Dataset, as_of: int, users: np.ndarray) -> np.ndarray:
    """Distinct positively engaged posts per user before `as_of`, counted the slow obvious way."""
    e = ds.engagements.to_pylist()
    seen: dict[int, set] = {}
    for row in e:
        if row["created_at"] < as_of and row["kind"] in POSITIVE:
            seen.setdefault(row["user_id"], set()).add(row["post_id"])
    return np.array([len(seen.get(int(u), ())) for u in users])


def test_segments_split_users_by_their_history(ds):
    split = temporal(ds)
    prior = _prior(ds, split.as_of, split.users)
    assert np.array_equal(split.prior_positives(), prior)
    cold, warm = make_split(ds, "temporal", segment="cold"), make_split(ds, "temporal", segment="warm")
    assert set(cold.users.tolist()) == set(split.users[prior == 0].tolist()) and len(cold.users) > 0
    assert set(warm.users.tolist()) == set(split.users[prior >= WARM_MIN].tolist()) and len(warm.users) > 0
    # A segment keeps exactly its users' truth, re-indexed.
    u0 = int(warm.users[0])
    assert set(warm.truth_of(0).tolist()) == set(split.truth_of(int(np.flatnonzero(split.users == u0)[0])).tolist())
    sample = make_split(ds, "temporal", max_users=10, seed=3)
    assert len(sample.users) == 10 and set(sample.users.tolist()) <= set(split.users.tolist())
    with pytest.raises(ValueError, match="unknown user segment"):
        make_split(ds, "temporal", segment="lukewarm")


def _with_clicks_on(ds: Dataset, user: np.ndarray, post: np.ndarray, t: int) -> Dataset:
    """The dataset plus a click (not a positive kind) on each given pair at time t."""
    extra = Dataset.conform("engagements", pa.table({
        "user_id": user, "post_id": post, "kind": ["click"] * len(user), "created_at": np.full(len(user), t),
        "value": np.ones(len(user))}))
    return Dataset({**ds.tables, "engagements": pa.concat_tables([ds.engagements, extra])}, ds.manifest, None)


def _lists(split, names=("popularity", "als", "item_knn", "ease")) -> dict[str, np.ndarray]:
    catalog = build_catalog(split, 100_000)
    out = {}
    for name in names:
        b = make_baseline(name)
        b.fit(split, catalog)
        out[name] = b.recommend(20).post_id
    return out


@pytest.mark.parametrize("protocol", ["leave-last-out", "random"])
def test_held_out_rows_never_reach_the_engine_or_the_baselines(ds, protocol):
    split = leave_last_out(ds) if protocol == "leave-last-out" else random_split(ds, seed=0)
    held = split.users[split.truth_user].astype(np.int64) << 32 | split.truth_post.astype(np.int64)
    for table in ("engagements", "impressions"):
        assert not np.isin(_keys(split.train[table]), held).any(), table
        assert np.isin(_keys(ds[table]), held).any() or table == "impressions"
    assert split.as_of == ds.manifest.time_range[1] + 1
    if protocol == "leave-last-out":  # the test item is each user's last positive
        e = ds.engagements.filter(pc.is_in(ds.engagements["kind"], pa.array(list(POSITIVE)))).to_pylist()
        last: dict[int, tuple] = {}
        for row in e:
            key = (row["created_at"], row["post_id"])
            if key > last.get(row["user_id"], (-1, -1)):
                last[row["user_id"]] = key
        assert {(u, p) for u, (_, p) in last.items()} == set(zip(split.users[split.truth_user].tolist(),
                                                                 split.truth_post.tolist(), strict=True))
    else:
        pairs = {(r["user_id"], r["post_id"]) for r in ds.engagements.to_pylist() if r["kind"] in POSITIVE}
        assert 0.15 < len(split.truth_post) / len(pairs) < 0.25
    # More rows on the held-out pairs (clicks before them) change nothing anyone is fitted on or served.
    u, p = split.users[split.truth_user][:40], split.truth_post[:40]
    leaked = _with_clicks_on(ds, u, p, int(ds.manifest.split.train_end))
    split2 = leave_last_out(leaked) if protocol == "leave-last-out" else random_split(leaked, seed=0)
    assert np.array_equal(split2.truth_post, split.truth_post)
    for table in ("engagements", "impressions"):
        assert split2.train[table].equals(split.train[table]), table
    before, after = _lists(split), _lists(split2)
    for name in before:
        assert np.array_equal(before[name], after[name]), name
    users = split.users[:15]
    pages = [serve_pages(RecommendationEngine(Dataset(s.train.tables, ds.manifest, None), as_of=s.as_of),
                         s.subset(np.isin(s.users, users)), 35).post_id for s in (split, split2)]
    assert np.array_equal(pages[0], pages[1])


def test_validation_split_sees_only_the_test_split_history(ds):
    for split in (temporal(ds), leave_last_out(ds), random_split(ds)):
        valid = validation_split(split, ds, 1000, 0)
        assert len(valid.users) > 0, split.protocol
        v_keys = valid.users[valid.truth_user].astype(np.int64) << 32 | valid.truth_post.astype(np.int64)
        assert np.isin(v_keys, _keys(split.train.engagements)).all(), split.protocol  # truth comes from history
        assert not np.isin(_keys(valid.train.engagements), v_keys).any() or split.protocol == "temporal"
        if split.protocol == "temporal":
            assert valid.as_of == ds.manifest.split.train_end
            assert valid.train.engagements["created_at"].to_numpy().max() < valid.as_of


def test_ease_matches_the_closed_form():
    rng = np.random.default_rng(0)
    x = sparse.csr_matrix((rng.random((40, 12)) < 0.3).astype(np.float32))
    lam = 5.0
    g = (x.T @ x).toarray().astype(np.float64) + lam * np.eye(12)
    p = np.linalg.inv(g)
    want = np.eye(12) - p / np.diag(p)[None, :]
    got = ease_weights(x, lam)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.all(np.diag(got) == 0)
    # The item cap keeps catalog items first, then the most engaged, only engaged ones.
    counts = np.array([5, 0, 9, 1, 7, 3])
    assert choose_items(counts, np.array([0, 1, 0, 0, 1, 1], bool), 3).tolist() == [2, 4, 5]


def test_tuning_picks_the_best_grid_point_on_validation(ds):
    split = temporal(ds)
    valid = validation_split(split, ds, 1000, 0)
    catalog = build_catalog(valid, 48)
    grid = [{"window_days": 1 / 24}, {"window_days": 1}, {"window_days": None}]
    t = tune("recent_popularity", valid, catalog, 0, grid=grid)
    scores = [validation_ndcg("recent_popularity", g, valid, catalog, 0) for g in grid]
    assert [pt["ndcg@10"] for pt in t["validation"]] == [round(s, 6) for s in scores]
    assert len(set(scores)) > 1  # the grid matters here, so the choice can be wrong
    assert t["chosen"] == grid[int(np.argmax(scores))]
    assert tune("popularity", valid, catalog, 0)["validation"] == []  # nothing to tune


def test_two_eval_runs_give_identical_baselines(tiny_world_dir):
    from foryou.eval.evaluator import evaluate

    def run():
        r = evaluate(tiny_world_dir, "temporal", ("recent_popularity", "als", "bpr", "item_knn", "ease"),
                     max_users=40, oracle=False, reps=20)
        for b in r["baselines"].values():
            for pt in b["tuning"]["validation"]:
                pt.pop("seconds")
        return r

    a, b = run(), run()
    assert a["baselines"] == b["baselines"]
    for name in ("recent_popularity", "als", "bpr", "item_knn", "ease"):
        assert a["methods"][name] == b["methods"][name], name
        assert a["segments"]["warm"]["methods"][name] == b["segments"]["warm"]["methods"][name], name
    assert a["segments"]["cold"]["users"] + a["segments"]["warm"]["users"] <= a["users"]
