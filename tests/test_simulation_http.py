"""`foryou simulate --url`: the closed loop over HTTP against a real `foryou serve` process on the
tiny world, with an experiment the service applies."""

from __future__ import annotations

import shutil
from collections import Counter

import httpx
import pytest

from foryou.bench.serving import running_server
from foryou.experiments import create_experiment
from foryou.simulation import Simulation, SimulationConfig
from foryou.simulation.http_backend import HttpEngine

pytestmark = pytest.mark.slow

EPS = {"timeline": {"exploration": {"strategy": "epsilon_greedy"}}}


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
        assert s["new_posts"] == 0 and "no add_post" in s["new_posts_note"]  # the service assigns post ids
        assert s["engine_models"]["heavy_ranker"]  # read from the service's responses
        # The service applied the arm the simulation attributes every user to.
        assert engine.served_arms and s["arm_mismatches"] == 0
        assert min(r.daily[a]["regret"][0] for a in r.arms) >= 0
        with httpx.Client(base_url=server.url) as c:
            # Every like the simulation sent is on the service's counters.
            likes = Counter(p for _, p, k, _, _ in sim._engagements if k == "like")
            for post, n in likes.most_common(3):
                assert c.get(f"/v1/posts/{post}").json()["counters"]["like"] >= n
            # The service logged one exposure per page it served to an experiment user.
            res = c.get("/v1/experiments/explore/results").json()
            served_users = {u for u, arms in engine.served_arms.items() if arms}
            assert res["users"] == len(served_users)
            assert sum(a["impressions"] for a in res["arms"]) == s["impressions"]
