"""Temporal split and History: nothing derived at time t can see an event at or after t."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from foryou.data.dataset import Dataset
from foryou.data.split import TemporalSplit, engagement_counts, follow_graph, history, popular_posts


@pytest.fixture(scope="module")
def ds(tiny_world_dir) -> Dataset:
    return Dataset.load(tiny_world_dir)


def test_windows_partition_every_event(ds):
    split = TemporalSplit.of(ds)
    for table in ("engagements", "impressions", "posts"):
        parts = [w.rows(ds, table).num_rows for w in split]
        assert sum(parts) == ds[table].num_rows and all(n > 0 for n in parts), table
    test_times = split.test.rows(ds, "engagements")["created_at"].to_numpy()
    assert test_times.min() >= ds.manifest.split.valid_end


def test_history_holds_only_the_past(ds):
    t = ds.manifest.split.train_end
    h = history(ds, t)
    for table in ("posts", "follows", "engagements", "impressions"):
        times = h[table]["created_at"].to_numpy()
        assert len(times) and times.max() < t, table
        assert h[table].num_rows == int((ds[table]["created_at"].to_numpy() < t).sum()), table


def test_builders_refuse_a_whole_dataset(ds):
    with pytest.raises(TypeError, match="leak"):
        follow_graph(ds)
    with pytest.raises(TypeError, match="leak"):
        engagement_counts(ds)


def _with_extra_engagements(ds: Dataset, rows: pa.Table) -> Dataset:
    tables = dict(ds.tables)
    tables["engagements"] = pa.concat_tables([ds.engagements, rows.cast(ds.engagements.schema)])
    return Dataset(tables, ds.manifest)


def test_a_future_event_cannot_change_anything_built_from_history(ds):
    t = ds.manifest.split.train_end
    target = int(ds.posts["post_id"][0].as_py())
    future = pa.table({"user_id": [1] * 50, "post_id": [target] * 50, "kind": ["like"] * 50,
                       "created_at": list(range(t, t + 50)), "value": [1.0] * 50})
    leaked = _with_extra_engagements(ds, future)
    for build in (lambda h: engagement_counts(h), lambda h: (popular_posts(h, 20),)):
        before = build(history(ds, t))
        after = build(history(leaked, t))
        for a, b in zip(before, after, strict=True):
            assert np.array_equal(a, b)
    # ... while the same events in the past do change it.
    past = future.set_column(3, "created_at", pa.array(range(t - 50, t)))
    ids, counts = engagement_counts(history(_with_extra_engagements(ds, past), t))
    assert ids[0] == target and counts[0] >= 50


def test_follow_graph_matches_the_follows_table(ds):
    g = follow_graph(history(ds, ds.manifest.split.train_end))
    src = ds.follows["src_id"].to_numpy()
    dst = ds.follows["dst_id"].to_numpy()
    created = ds.follows["created_at"].to_numpy()
    user = int(np.bincount(src).argmax())
    expected = np.sort(dst[(src == user) & (created < ds.manifest.split.train_end)])
    assert np.array_equal(np.sort(g.following(user)), expected)
    assert g.out_degree().sum() == int((created < ds.manifest.split.train_end).sum())
