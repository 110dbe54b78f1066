"""`foryou simulate --url`: the closed loop over HTTP against a real `foryou serve` process on the
tiny world, with an experiment the service applies."""

from __future__ import annotations

import shutil
from collections import Counter

import httpx
import pyarrow.parquet as pq
import pytest

from foryou.bench.serving import running_server
from foryou.experiments import create_experiment
from foryou.simulation import Simulation, SimulationConfig
from foryou.simulation.http_backend import HttpEngine

EPS = {"timeline": {"exploration": {"strategy": "epsilon_greedy"}}}


def test_the_http_engine_waits_out_the_rate_limit(monkeypatch):
    """A 429 is waited out for its Retry-After, then the page is read as the in-process engine returns it."""
    calls, waits, queries = [], [], []
    page = {"user_id": 7, "items": [{"rank": 1, "post_id": 11, "author_id": 3, "source": "in_network", "score": 0.5,
                                     "in_network": True, "created_at": 100, "predictions": {"like": 0.1},
                                     "liked_by": [], "network_reason": "in-network"}],
            "cursor": "c1", "cold_start": False, "sources": {"in_network": 1}, "models": {"heavy_ranker": "v1"},
            "experiments": {}}

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        queries.append(request.url.query)
        if request.url.path == "/healthz":
            return httpx.Response(200, json={"ok": True})
        if len(calls) == 2:
            return httpx.Response(429, headers={"retry-after": "2"}, json={"error": "rate limited"})
        return httpx.Response(200, json=page)

    monkeypatch.setattr("foryou.simulation.http_backend.time.sleep", waits.append)
    engine = HttpEngine("http://service", transport=httpx.MockTransport(answer))
    r = engine.recommend(7, n=5)
    assert waits == [2.0] and engine.rate_limited == 1 and calls.count("/v1/users/7/timeline") == 2
    assert [it.post_id for it in r.items] == [11] and r.items[0].in_network
    assert r.items[0].predictions == {"like": 0.1} and engine.model_versions() == {"heavy_ranker": "v1"}
    # The next page of the scroll: the posts served so far travel in the service's own cursor.
    engine.recommend(7, n=5, exclude=[11])
    assert "cursor=c1" in str(queries[-1]) and "cursor" not in str(queries[1])


@pytest.mark.slow


def test_one_day_over_http_reaches_the_service(tiny_world_dir, tmp_path):
    world = tmp_path / "world"
    shutil.copytree(tiny_world_dir, world, ignore=shutil.ignore_patterns(".service"))
    exp = create_experiment(world, {"name": "explore", "arms": [{"name": "thompson"},
                                                                {"name": "eps", "overrides": EPS}]})
    with running_server(world) as server:
        engine = HttpEngine(server.url)
        sim = Simulation(world, SimulationConfig(days=1, seed=3, user_share=0.05, regret_share=1.0),
                         experiment=exp, engine=engine, out=tmp_path / "sim")
        r = sim.run()
        engine.close()
        s = r.summary
        assert s["sessions"] > 0 and s["impressions"] > 0
        assert s["new_posts"] == 0 and "assigns its own post ids" in s["new_posts_note"]  # the service assigns post ids
        assert s["engine_models"]["heavy_ranker"]  # read from the service's responses
        # The service applied the arm the simulation attributes every user to.
        assert engine.served_arms and s["arm_mismatches"] == 0
        assert min(r.daily[a]["regret"][0] for a in r.arms) >= 0
        with httpx.Client(base_url=server.url) as c:
            # Every like the simulation sent is on the service's counters.
            likes = Counter(p for _, p, k, _, _ in sim.engagements if k == "like")
            for post, n in likes.most_common(3):
                assert c.get(f"/v1/posts/{post}").json()["counters"]["like"] >= n
            # The service logged one exposure per page it served to an experiment user.
            res = c.get("/v1/experiments/explore/results").json()
            served_users = {u for u, arms in engine.served_arms.items() if arms}
            assert res["users"] == len(served_users)
            assert sum(a["impressions"] for a in res["arms"]) == s["impressions"]


def test_the_http_engine_is_an_engine(tiny_world_dir, tmp_path):
    """The Engine protocol over HTTP: pages of many users as columns, a follow, a new post."""
    world = tmp_path / "world"
    shutil.copytree(tiny_world_dir, world, ignore=shutil.ignore_patterns(".service"))
    users = sorted(pq.read_table(world / "users.parquet", columns=["user_id"])["user_id"].to_pylist())[:3]
    with running_server(world) as server, httpx.Client(base_url=server.url) as c:
        engine = HttpEngine(server.url)
        pages = engine.recommend_many(users, n=5)
        assert pages.user_id.tolist() == users and pages.post_id.shape == (3, 5)
        first = engine.recommend(users[0], n=5)
        assert pages.post_id[0, :pages.lengths[0]].tolist() == [it.post_id for it in first.items]
        engine.relate(users[0], users[1], "unfollow")
        before = c.get(f"/v1/users/{users[0]}").json()["following"]
        engine.relate(users[0], users[1], "follow")
        assert c.get(f"/v1/users/{users[0]}").json()["following"] == before + 1
        post = engine.add_post(0, author_id=users[1], topic=1, labels={"is_nsfw": False})
        assert c.get(f"/v1/posts/{post}").json()["author_id"] == users[1]
        engine.close()
