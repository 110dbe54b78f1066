"""The event log in a real Redis (`foryou serve --state redis://…`): ordered, idempotent, durable across
kill -9 of Redis; writes answer 503 while it is down and reads keep serving; two workers share it; Redis
down or not fsyncing at start is one error line."""

from __future__ import annotations

import shutil

import pytest
from cross_worker import write_through_one_read_through_other
from redis_server import RedisServer, needs_redis

from foryou.bench.serving import clients_per_worker, free_port, running_server
from foryou.service.redis_store import RedisEventStore
from foryou.service.store import Event, StoreError

pytestmark = needs_redis


@pytest.fixture()
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture()
def world(tiny_world_dir, tmp_path):
    path = tmp_path / "world"
    shutil.copytree(tiny_world_dir, path, ignore=shutil.ignore_patterns(".service"))
    return path


def _like(user: int, post: int, event_id: str | None = None) -> Event:
    e = Event("engagement", "like", user, 1_000, post_id=post)
    if event_id is not None:
        e.event_id = event_id
    return e


def test_redis_log_is_ordered_idempotent_and_keeps_every_ack_across_kill_9(redis_server):
    store = RedisEventStore(redis_server.url, "world-test", base_post_id=100)
    try:
        acks = store.append([_like(1, 5, "a"), _like(2, 6), Event("post", "original", 3, 1_001),
                             _like(1, 5, "a")])  # the same client id twice in one request: stored once
        assert [d for _, d in acks] == [False, False, False, True]
        assert [e.seq for e, _ in acks] == [1, 2, 3, 1] and acks[2][0].post_id == 101  # after the dataset's posts
        again = store.append([_like(1, 5, "a")])  # a retry in a later request: the stored event, a duplicate
        assert again[0][1] and again[0][0].seq == 1 and again[0][0].user_id == 1
        other = RedisEventStore(redis_server.url, "world-test", base_post_id=100)  # another worker
        assert other.store_id == store.store_id
        assert other.append([Event("post", "original", 4, 1_002)])[0][0].post_id == 102  # ids never repeat
        other.close()
        stored = store.since(0)
        assert [(e.seq, e.type, e.user_id, e.post_id) for e in stored] == [
            (1, "engagement", 1, 5), (2, "engagement", 2, 6), (3, "post", 3, 101), (4, "post", 4, 102)]
        assert store.data_version() == 4 and store.count() == 4

        redis_server.kill()
        with pytest.raises(StoreError, match="cannot write"):
            store.append([_like(9, 9, "lost")])
        assert store.data_version() == 4 and store.since(4) == []  # reads keep the last state, no exception
        redis_server.start()  # the same AOF: every acknowledged event is back
        assert [e.seq for e in store.since(0)] == [1, 2, 3, 4]
        try:
            fresh = store.append([_like(9, 9, "after")])
        except StoreError:  # the pooled connection from before the restart fails once; never retried
            fresh = store.append([_like(9, 9, "after")])
        assert fresh[0][0].seq == 5 and not fresh[0][1]
    finally:
        store.close()


def test_a_redis_that_does_not_fsync_every_write_is_refused(redis_server):
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.config_set("appendfsync", "everysec")
    try:
        with pytest.raises(StoreError, match=r"appendfsync=everysec.*--appendfsync always"):
            RedisEventStore(redis_server.url, "world-test")
    finally:
        client.config_set("appendfsync", "always")
        client.close()


@pytest.mark.slow
def test_two_workers_share_the_redis_log_and_cache_and_writes_answer_503_while_it_is_down(world, tmp_path,
                                                                                          redis_server):
    with running_server(world, workers=2, trace_log=tmp_path / "trace.jsonl", redis=redis_server.url) as server:
        a, b = clients_per_worker(server.url, 2)
        try:
            post = 11
            likes = write_through_one_read_through_other(a, b, post)

            # the scored-candidate cache is in Redis: a miss on one worker is a hit on the other
            first = a.get("/v1/users/9/timeline", params={"n": 5}).json()
            again = b.get("/v1/users/9/timeline", params={"n": 5}).json()
            assert not first["cached"] and again["cached"]
            assert [i["post_id"] for i in again["items"]] == [i["post_id"] for i in first["items"]]
            b.post("/v1/engagements", json={"user_id": 9, "post_id": first["items"][0]["post_id"],
                                            "kind": "not_interested"}).raise_for_status()
            after = a.get("/v1/users/9/timeline", params={"n": 5}).json()  # the user's write: gone everywhere
            assert not after["cached"] and first["items"][0]["post_id"] not in [i["post_id"] for i in after["items"]]

            redis_server.kill()
            down = a.post("/v1/engagements", json={"user_id": 6, "post_id": 12, "kind": "like"})
            assert down.status_code == 503 and "redis" in down.json()["detail"]
            assert b.get("/v1/users/6/timeline", params={"n": 5}).status_code == 200  # reads keep serving
            redis_server.start()
            for _ in range(3):  # the first write per worker may meet a connection from before the restart
                if a.post("/v1/engagements", json={"user_id": 6, "post_id": 12, "kind": "like"}).status_code == 200:
                    break
            else:
                pytest.fail("writes did not come back after Redis restarted")
            assert b.get(f"/v1/posts/{post}").json()["counters"]["like"] == likes  # nothing acked lost
        finally:
            a.close()
            b.close()


def test_redis_down_at_start_is_one_error_line(world, tmp_path, foryou_cli):
    r = foryou_cli("serve", str(world), "--port", str(free_port()), "--state", f"redis://127.0.0.1:{free_port()}",
                   cwd=tmp_path)
    assert r.returncode != 0
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "redis" in lines[0], lines
    bad = foryou_cli("serve", str(world), "--state", "http://localhost:6379", cwd=tmp_path)
    assert bad.returncode != 0 and "--state" in bad.stderr + bad.stdout
    alone = foryou_cli("serve", str(world), "--replicas", "2", cwd=tmp_path)  # replicas share state through Redis
    assert alone.returncode != 0 and "--state redis://" in alone.stderr + alone.stdout
