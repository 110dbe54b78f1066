"""`foryou serve` as a real process: end to end, kill -9 mid-stream, two workers sharing the store."""

from __future__ import annotations

import shutil
import threading

import httpx
import orjson
import pytest
from contract import contract_client
from cross_worker import write_through_one_read_through_other

from foryou.bench.serving import ServerProcess, clients_per_worker, running_server
from foryou.service.store import EventStore

pytestmark = pytest.mark.slow


@pytest.fixture()
def world(tiny_world_dir, tmp_path):
    path = tmp_path / "world"
    shutil.copytree(tiny_world_dir, path, ignore=shutil.ignore_patterns(".service"))
    return path


USER = 6  # follows people in the tiny world (seed 1)


def test_end_to_end_like_removes_the_post_and_the_trace_shows_counters(world, tmp_path):
    trace = tmp_path / "trace.jsonl"
    with running_server(world, trace_log=trace, token="tok") as server, contract_client(server.url) as c:
        u = USER
        page = c.get(f"/v1/users/{u}/timeline", params={"n": 10}).json()
        post = page["items"][0]["post_id"]
        likes = c.get(f"/v1/posts/{post}").json()["counters"]["like"]
        body = {"user_id": u, "post_id": post, "kind": "like"}
        assert c.post("/v1/engagements", json=body).status_code == 401
        r = c.post("/v1/engagements", json=body, headers={"Authorization": "Bearer tok", "X-Request-ID": "req-like-1"})
        assert r.status_code == 200 and r.headers["x-request-id"] == "req-like-1"
        again = c.get(f"/v1/users/{u}/timeline", params={"n": 10}).json()
        assert post not in [i["post_id"] for i in again["items"]]
    lines = [orjson.loads(line) for line in trace.read_text().splitlines()]
    write = next(t for t in lines if t["request_id"] == "req-like-1")
    assert write["counters"][str(post)]["like"] == likes + 1
    reads = [t for t in lines if t["route"] == "timeline"]
    assert reads[-1]["steps_ms"]["total"] > 0 and reads[-1]["models"] and reads[-1]["sources"]
    assert post not in reads[-1]["posts"]


def test_kill_9_mid_stream_loses_no_acknowledged_write_and_duplicates_none(world, tmp_path):
    store_file = tmp_path / "events.sqlite"
    server = ServerProcess(world, store=store_file, trace_log=tmp_path / "trace.jsonl")
    server.wait_ready()
    with contract_client(server.url) as c:
        posts = c.get("/v1/users/6/timeline", params={"n": 20}).json()["items"]
        targets = [p["post_id"] for p in posts[:5]]
        base = {p: c.get(f"/v1/posts/{p}").json()["counters"]["click"] for p in targets}
    acked: list[str] = []
    sent: list[dict] = []
    stop = threading.Event()
    failed: list[BaseException] = []

    def stream() -> None:
        with contract_client(server.url, timeout=5) as c:
            i = 0
            while not stop.is_set():
                e = {"user_id": 6 + i % 3, "post_id": targets[i % len(targets)], "kind": "click", "event_id": f"ev-{i}"}
                sent.append(e)
                try:
                    r = c.post("/v1/engagements", json=e)
                except httpx.HTTPError:
                    return  # the server is gone
                except AssertionError as exc:  # a response off the contract: the main thread fails on it
                    failed.append(exc)
                    return
                if r.status_code == 200:
                    acked.append(e["event_id"])
                i += 1

    t = threading.Thread(target=stream)
    t.start()
    while len(acked) < 150 and t.is_alive():
        t.join(0.05)
    assert not failed, failed[0]
    server.kill()  # SIGKILL to the whole process group, mid-stream
    stop.set()
    t.join()
    server.stop()

    store = EventStore(store_file)
    stored = [e.event_id for e in store.iter_since(0)]
    store.close()
    assert set(acked) <= set(stored)  # every acknowledged write survived
    assert len(stored) == len(set(stored))  # none twice

    # Restart: the overlay is rebuilt from the store; the client retries what it never saw acknowledged.
    with running_server(world, store=store_file, trace_log=tmp_path / "trace2.jsonl") as server2, \
            contract_client(server2.url) as c:
        unacked = [e for e in sent if e["event_id"] not in set(acked)]
        if unacked:
            r = c.post("/v1/engagements", json={"events": unacked}).json()
            assert r["accepted"] + r["duplicates"] == len(unacked)
        for p in targets:
            expected = base[p] + sum(1 for e in sent if e["post_id"] == p)
            assert c.get(f"/v1/posts/{p}").json()["counters"]["click"] == expected


def test_a_write_through_one_worker_is_read_through_the_other(world, tmp_path):
    with running_server(world, workers=2, trace_log=tmp_path / "trace.jsonl") as server:
        a, b = clients_per_worker(server.url, 2)
        try:
            assert a.get("/healthz").headers["x-worker"] != b.get("/healthz").headers["x-worker"]
            write_through_one_read_through_other(a, b)
        finally:
            a.close()
            b.close()


def test_two_workers_share_writes(world, tmp_path):
    with running_server(world, workers=2, trace_log=tmp_path / "trace.jsonl") as server, \
            contract_client(server.url) as c:
        page = c.get("/v1/users/6/timeline", params={"n": 10}).json()
        liked = [i["post_id"] for i in page["items"][:3]]
        for p in liked:
            c.post("/v1/engagements", json={"user_id": 6, "post_id": p, "kind": "like"}).raise_for_status()
        created = c.post("/v1/posts", json={"author_id": 7}).json()["post_id"]
        for _ in range(12):  # whichever worker answers has applied every write
            again = c.get("/v1/users/6/timeline", params={"n": 10}).json()
            assert not set(liked) & {i["post_id"] for i in again["items"]}
            assert c.get(f"/v1/posts/{created}").status_code == 200
        assert "foryou_events_total" in c.get("/metrics").text
