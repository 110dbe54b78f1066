from __future__ import annotations

import numpy as np
import pytest

from foryou.config import SimClustersConfig, world_config
from foryou.data.split import history
from foryou.data.world import generate_world
from foryou.embeddings import SimClusters


@pytest.fixture(scope="module")
def world():
    return generate_world(world_config("tiny"), seed=1)


@pytest.fixture(scope="module")
def built(world):
    t = world.dataset.manifest.split.train_end
    return SimClusters.build(history(world.dataset, t), SimClustersConfig()), t


def test_build_refuses_a_whole_dataset(world):
    with pytest.raises(TypeError):
        SimClusters.build(world.dataset)


def test_clusters_recover_topics(world, built):
    sc, _ = built
    top = world.truth.latent.interests.argmax(1)
    cl = sc.cluster_of(np.arange(len(top)))
    m = np.flatnonzero(cl >= 0)
    assert sc.n_clusters >= 2 and len(m) > 100
    a, b = np.triu_indices(len(m), 1)
    same = cl[m][a] == cl[m][b]
    agree = top[m][a] == top[m][b]
    assert agree[same].mean() > 3 * agree.mean()
    stats = sc.stats()
    assert stats["clusters"] == sc.n_clusters and stats["users_with_interested_in"] > 200


def test_deterministic(world, built):
    sc, t = built
    again = SimClusters.build(history(world.dataset, t), SimClustersConfig())
    assert (again.known_for != sc.known_for).nnz == 0
    assert (again.interested_in != sc.interested_in).nnz == 0


def test_retrieval_matches_true_interests_and_respects_time(world, built):
    sc, t = built
    interests = world.truth.latent.interests
    topic = world.dataset.posts.sort_by("post_id")["topic"].to_numpy()
    retrieved, rand, got = [], [], 0
    for u in range(len(interests)):
        rows, scores = sc.retrieve(u, t, k=50, min_created=t - 48 * 3600)
        if len(rows):
            got += 1
            assert np.all(sc.created_at[rows] < t) and np.all(sc.created_at[rows] >= t - 48 * 3600)
            assert np.all(np.diff(scores) <= 1e-12) and np.all(scores >= sc.config.min_cosine)
            np.testing.assert_allclose(sc.score(u, rows), scores)
            retrieved.append(interests[u, topic[rows]].mean())
            rand.append(interests[u, topic].mean())
    assert got > 200
    assert np.mean(retrieved) > 1.5 * np.mean(rand)
    # an earlier `now` never returns posts created at or after it
    now = t - 24 * 3600
    for u in range(0, 300, 10):
        rows, _ = sc.retrieve(u, now)
        assert np.all(sc.created_at[rows] < now)


def test_like_moves_post_vector_and_decays(world):
    t = world.dataset.manifest.split.train_end
    sc = SimClusters.build(history(world.dataset, t), SimClustersConfig())
    user = int(np.flatnonzero(np.diff(sc.interested_in.indptr) > 0)[0])
    post = int(np.flatnonzero(np.diff(sc._pv.indptr) == 0)[0])  # a post with no vector yet
    assert sc.post_vector([post]).nnz == 0
    sc.add_like(user, post, t + 3600)
    v = sc.post_vector([post], now=t + 3600).toarray().ravel()
    np.testing.assert_allclose(v, sc.user_vector(user), rtol=1e-9)
    later = sc.post_vector([post], now=t + 3600 + 8 * 3600).toarray().ravel()
    np.testing.assert_allclose(later, v / 2, rtol=1e-9)
    # a second like from another user moves it towards that user's vector
    other = int(np.flatnonzero(np.diff(sc.interested_in.indptr) > 0)[5])
    before = sc.score(other, [post])[0]
    sc.add_like(other, post, t + 3600)
    assert sc.score(other, [post])[0] > before
    # compaction keeps the vectors and makes the post retrievable through the top lists
    dense = sc.post_vector([post, post]).toarray()
    sc.compact()
    np.testing.assert_allclose(sc.post_vector([post, post]).toarray(), dense)
    assert post in sc._top_posts


def test_retrieval_from_the_dense_top_block_equals_the_sparse_rows_live_likes_included(world, monkeypatch):
    """The top-list block (a small dense matrix product) answers exactly what the sparse rows answer, also
    for candidates whose vectors live likes changed since the build."""
    import foryou.embeddings.simclusters as module

    t = world.dataset.manifest.split.train_end
    sc = SimClusters.build(history(world.dataset, t), SimClustersConfig())
    users = np.flatnonzero(np.diff(sc.interested_in.indptr) > 0)[:40]

    def both(now: int) -> list[tuple]:
        out = []
        for block_max in (module.BLOCK_MAX, 0):  # 0: every block is "too large", the sparse rows answer
            monkeypatch.setattr(module, "BLOCK_MAX", block_max)
            sc._block = None
            out.append([sc.retrieve(int(u), now, k=100) for u in users])
            out[-1].append((users, sc.score(int(users[0]), np.arange(sc.n_posts))))  # every post, one viewer
        return out

    with_block, sparse_rows = both(t)
    assert sc._block is None and module.BLOCK_MAX == 0  # the second pass really took the sparse path
    for (r1, s1), (r2, s2) in zip(with_block, sparse_rows, strict=True):
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_allclose(s1, s2, rtol=1e-12)
    liked = np.unique(np.concatenate([r[:5] for r, _ in with_block[:-1] if len(r)]))[:20]  # retrieved posts
    for i, post in enumerate(liked):  # live likes on posts that are on the top lists
        sc.add_like(int(users[i % len(users)]), int(post), t + 60)
    with_block, sparse_rows = both(t + 120)
    assert any(len(r) for r, _ in with_block[:-1])
    for (r1, s1), (r2, s2) in zip(with_block, sparse_rows, strict=True):
        np.testing.assert_array_equal(r1, r2)
        np.testing.assert_allclose(s1, s2, rtol=1e-12)
