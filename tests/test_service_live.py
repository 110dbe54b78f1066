"""The service's live behaviour beyond the basics: A/B experiments over HTTP (arms, exposures,
outcomes, results), live follower counts, the world clock across idle gaps, group commit under
concurrent writers, and the cache-only fast path of the timeline route."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from contract import ContractClient

from foryou.config import ForYouConfig, apply_overrides, parse_overrides
from foryou.experiments.definition import Experiment
from foryou.experiments.runtime import ActiveExperiments
from foryou.experiments.store import ExperimentLog, ExperimentStore
from foryou.service import service as service_module
from foryou.service.app import ServeSettings, create_app
from foryou.service.service import Service, ServiceOptions

ARM_B = {"timeline": {"exploration": {"strategy": "ucb"}}}


def _copy(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".service", "experiments"))
    return dst


@pytest.fixture()
def world(tiny_world_dir, tmp_path):
    return _copy(tiny_world_dir, tmp_path / "world")


def _active_users(svc: Service) -> list[int]:
    idx = svc.engine.state.index
    return [int(u) for u in idx.user_ids[np.argsort(-idx.follows.out_degree(), kind="stable")]]


def test_experiment_arms_exposures_and_outcomes_over_http(world, tmp_path):
    settings = ServeSettings(dataset=world, trace_log=tmp_path / "trace.jsonl")
    with ContractClient(create_app(settings)) as client:
        svc = client.app.state.service
        users = _active_users(svc)[:40]
        u = users[0]
        before = client.get(f"/v1/users/{u}/timeline", params={"n": 5}).json()  # cached under no arms
        assert "experiments" not in before
        r = client.post("/v1/experiments", json={"name": "explore", "arms": {"A": {}, "B": {"overrides": ARM_B}}})
        assert r.status_code == 200, r.text
        arms = ActiveExperiments(ExperimentStore(world).running())
        u = next(x for x in users if arms.assignments(x).get("explore") == "B")
        control = next(x for x in users if arms.assignments(x).get("explore") == "A")
        client.get(f"/v1/users/{u}/timeline", params={"n": 5})  # may have been cached before the experiment

        calls: list = []
        recommend_each = svc.engine.recommend_each  # misses are ranked in (micro-)batches

        def spy(users, n, now, overrides=None, exclude=None):
            calls.append(overrides)
            return recommend_each(users, n, now, overrides, exclude)

        svc.cache.clear()
        svc.engine.recommend_each = spy
        page = client.get(f"/v1/users/{u}/timeline", params={"n": 5}).json()
        assert page["experiments"] == {"explore": "B"} and calls == [ARM_B]  # arm B's config
        nxt = client.get(f"/v1/users/{u}/timeline", params={"n": 5, "cursor": page["cursor"]}).json()
        assert nxt["cached"] and calls == [ARM_B]  # next page from the cache entry ranked under B
        client.get(f"/v1/users/{control}/timeline", params={"n": 5})
        assert calls == [ARM_B, None]  # control: the default pipeline
        svc.engine.recommend_each = recommend_each

        liked = page["items"][0]["post_id"]
        assert client.post("/v1/engagements", json={"user_id": u, "post_id": liked, "kind": "like"}).status_code == 200
        log = ExperimentLog(ExperimentStore(world).log_path)
        exposures = log.query("SELECT arm, user_id, session_id, items FROM exposures WHERE experiment = 'explore' "
                              "AND user_id = ?", (u,))
        events = log.query("SELECT user_id, post_id, kind FROM events WHERE user_id = ?", (u,))
        log.close()
        assert [(a, n) for a, _, _, n in exposures[-2:]] == [("B", 5), ("B", 5)]
        assert exposures[-1][2] == exposures[-2][2]  # page 2 (cursor) is the same scroll session
        assert (u, liked, "like") in events
        results = client.get("/v1/experiments/explore/results").json()
        b = next(a for a in results["arms"] if a["arm"] == "B")
        assert b["users"] >= 1 and b["positives"] >= 1  # the live like counts as an outcome
        a = next(a for a in results["arms"] if a["arm"] == "A")
        assert a["users"] >= 1 and a["positives"] == 0


def test_followers_count_includes_live_follows_and_unfollows(world, tmp_path):
    svc = Service(world, options=ServiceOptions(trace_log=tmp_path / "trace.jsonl"))
    try:
        idx = svc.engine.state.index
        users = _active_users(svc)
        target = users[-1]
        fans = [x for x in users[:10] if target not in idx.user_ids[svc.engine.state.overlay.following_rows(
            idx.user_row(x))]][:2]
        base = svc.user(target)["followers"]
        assert base == int(idx.author_followers[idx.user_row(target)])
        svc.write([svc.relation(f, target, "follow") for f in fans])
        assert svc.user(target)["followers"] == base + 2
        svc.write([svc.relation(fans[0], target, "unfollow")])
        assert svc.user(target)["followers"] == base + 1
    finally:
        svc.close()


class FakeWall:
    def __init__(self, t: float):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_world_clock_runs_with_traffic_and_idle_gaps_are_capped(world, tmp_path, monkeypatch):
    wall = FakeWall(1_000_000.0)
    monkeypatch.setattr(service_module.time, "time", wall)
    opts = ServiceOptions(trace_log=tmp_path / "trace.jsonl")
    assert ForYouConfig().service.clock_idle_cap_s == 3600
    svc = Service(world, options=opts)
    users = _active_users(svc)
    start = svc.clock()
    assert start == svc.as_of
    wall.t += 600
    assert svc.clock() == start + 600  # runs with wall time
    wall.t += 3 * 86400
    assert svc.clock() == start + 3600  # idle for 3 days: at most an hour passes
    post = int(svc.engine.state.index.post_id[-1])
    (e, _), = svc.write([svc.engagement(users[0], post, "like")])
    assert e.t == start + 3600
    wall.t += 120
    assert svc.clock() == e.t + 120  # traffic again: the clock runs on from the newest event
    assert len(svc.timeline(users[1], n=10)["items"]) > 0  # posts still within the recency windows
    svc.close()

    wall.t += 30 * 86400
    svc = Service(world, options=opts)  # a restart a month later resumes from the newest stored event
    assert svc.clock() == e.t + 3600
    svc.close()

    frozen = Service(world, apply_overrides(ForYouConfig(), parse_overrides(["service.clock_idle_cap_s=0"])), opts)
    wall.t += 5000
    assert frozen.clock() == e.t  # 0: frozen at the newest event
    frozen.close()


def test_group_commit_concurrent_writers_each_get_their_own_acks(world, tmp_path):
    svc = Service(world, options=ServiceOptions(trace_log=tmp_path / "trace.jsonl"))
    try:
        users = _active_users(svc)[:8]
        post = int(svc.engine.state.index.post_id[-2])
        before = svc.post(post)["counters"]["click"]
        acks: dict[int, list] = {}

        def writer(k: int) -> None:
            out = []
            for i in range(15):
                # every writer also retries one shared id: stored once across writers and groups
                eid = "shared-1" if i == 7 else f"w{k}-{i}"
                out.extend(svc.write([svc.engagement(users[k], post, "click", event_id=eid)]))
            acks[k] = out

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        flat = [a for k in range(8) for a in acks[k]]
        assert all(e.event_id == ("shared-1" if i % 15 == 7 else f"w{i // 15}-{i % 15}")
                   for i, (e, _) in enumerate(flat))
        fresh = sorted(e.seq for e, dup in flat if not dup)
        assert len(fresh) == 8 * 14 + 1 and fresh == list(range(fresh[0], fresh[0] + len(fresh)))
        assert len({e.seq for e, _ in flat if e.event_id == "shared-1"}) == 1
        assert svc.store.count() == len(fresh) and svc.applied_seq == fresh[-1]
        assert svc.post(post)["counters"]["click"] == before + len(fresh)  # every one applied once
    finally:
        svc.close()


def test_timeline_fast_path_serves_hits_only(world, tmp_path):
    svc = Service(world, options=ServiceOptions(trace_log=tmp_path / "trace.jsonl"))
    try:
        u = _active_users(svc)[0]
        assert svc.timeline_cached(u, n=5) is None  # a miss: the caller runs `timeline` off the loop
        first = svc.timeline(u, n=5)
        hit = svc.timeline_cached(u, n=5, cursor=first["cursor"])
        assert hit is not None and hit["cached"] and not set(map(_pid, hit["items"])) & set(map(_pid, first["items"]))
        assert svc.timeline_cached(u, n=5, explain=True) is None
        svc.write([svc.engagement(u, _pid(first["items"][0]), "like")])  # own write: entry invalidated
        assert svc.timeline_cached(u, n=5) is None
    finally:
        svc.close()


def _pid(item: dict) -> int:
    return item["post_id"]


def test_an_outcome_lost_in_a_crash_is_logged_again_on_restart(world, tmp_path):
    """The experiment log is written after the event store's commit; a crash in between loses the
    outcome row, not the event. On restart the service logs it from the event store, exactly once."""
    options = ServiceOptions(trace_log=tmp_path / "trace.jsonl")
    ExperimentStore(world).create(Experiment.model_validate({"name": "explore", "arms": [
        {"name": "A"}, {"name": "B", "overrides": ARM_B}]}))
    svc = Service(world, options=options)
    try:
        users = _active_users(svc)[:20]
        posts = [int(p) for p in svc.engine.state.index.post_id[:3]]
        svc.write([svc.engagement(users[0], posts[0], "like")])  # logged normally
        svc.write([svc.engagement(u, posts[1], "like") for u in users[1:6]])
    finally:
        svc.close()
    log = ExperimentLog(ExperimentStore(world).log_path)
    logged = log.query("SELECT user_id, post_id, seq FROM events WHERE seq IS NOT NULL ORDER BY seq")
    assert len(logged) == 6
    with log._lock:  # the crash: the last commit's outcome rows never reached the experiment log
        log._db.execute("DELETE FROM events WHERE post_id = ?", (posts[1],))
    log.close()

    for _ in range(2):  # restart twice: the second one finds nothing missing
        Service(world, options=options).close()
        log = ExperimentLog(ExperimentStore(world).log_path)
        again = log.query("SELECT user_id, post_id, seq FROM events WHERE seq IS NOT NULL ORDER BY seq")
        log.close()
        assert again == logged
