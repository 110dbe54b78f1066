from __future__ import annotations

import numpy as np
import pytest

from foryou.config import world_config
from foryou.data.split import follow_graph, history
from foryou.data.world import generate_world
from foryou.graph.realgraph import RealGraph


@pytest.fixture(scope="module")
def world():
    return generate_world(world_config("tiny"), seed=1)


@pytest.fixture
def setup(world):
    t = world.dataset.manifest.split.train_end
    h = history(world.dataset, t)
    fg = follow_graph(h)
    user = int(np.argmax(fg.out_degree()))
    follows = fg.adjacency.indices[fg.adjacency.indptr[user]:fg.adjacency.indptr[user + 1]]
    return RealGraph.build(h), t, user, follows


def test_build_refuses_a_whole_dataset(world):
    with pytest.raises(TypeError):
        RealGraph.build(world.dataset)


def test_interactions_raise_and_negatives_lower(setup):
    rg, t, user, follows = setup
    a, b = int(follows[0]), int(follows[1])
    wa, wb = rg.weights(user, [a, b])
    rg.record(user, a, "like", t)
    rg.record(user, a, "reply", t)
    rg.record(user, b, "block", t)
    wa2, wb2 = rg.weights(user, [a, b])
    assert wa2 > wa and wb2 < wb


def test_follow_prior_and_stranger(setup):
    rg, _, user, follows = setup
    strangers = np.setdiff1d(np.arange(300), np.r_[follows, user])
    no_touch = [s for s in strangers if rg.features(user, [s])[0, 1:].sum() == 0]
    assert rg.weights(user, [follows[0]])[0] > rg.weights(user, [no_touch[0]])[0] - 1e-12
    w_stranger = rg.weights(user, [no_touch[0]])[0]
    rg.record(user, int(no_touch[0]), "follow", rg.now)
    assert rg.weights(user, [no_touch[0]])[0] > w_stranger
    assert int(no_touch[0]) in rg.follows(user)


def test_decay_halves_a_count_after_seven_days(setup):
    rg, t, user, follows = setup
    target = int(np.setdiff1d(np.arange(300), np.r_[follows, user])[0])
    base = np.expm1(rg.features(user, [target], now=t)[0, 1])
    rg.record(user, target, "like", t)
    now = np.expm1(rg.features(user, [target], now=t)[0, 1])
    week = np.expm1(rg.features(user, [target], now=t + 7 * 86_400)[0, 1])
    assert now == pytest.approx(base + 1.0)
    assert week == pytest.approx(now / 2)


def test_top_follows_orders_by_weight(setup):
    rg, t, user, follows = setup
    rows, w = rg.top_follows(user, 10)
    assert len(rows) == min(10, len(follows)) and set(rows) <= set(follows.tolist())
    assert np.all(np.diff(w) <= 0)
    np.testing.assert_allclose(rg.weights(user, rows), w)
    last = int(rg.top_follows(user, len(follows))[0][-1])
    for _ in range(5):
        rg.record(user, last, "repost", t)
    assert rg.top_follows(user, 1)[0][0] == last
    everyone, _ = rg.top_follows(user, 10_000)
    assert len(everyone) == len(follows)  # follows without interactions still get the prior
