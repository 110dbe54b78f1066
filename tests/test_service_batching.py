"""Micro-batching (`foryou.service.batcher`): concurrent cache misses ranked in one pipeline pass, each
request getting exactly the page it would have got alone; a lone miss never waits."""

from __future__ import annotations

import shutil
import threading

import pytest
from contract import service_client

from foryou.service.batcher import MicroBatcher


def test_items_of_one_key_within_the_window_share_a_call_and_a_lone_item_does_not_wait():
    calls: list[tuple[str, list[int]]] = []

    def run(key, items):
        calls.append((key, list(items)))
        return [i * 10 for i in items]

    expected = [5]
    batcher: MicroBatcher[int] = MicroBatcher(run, wait_s=3600.0, max_batch=8, expected=lambda: expected[0])
    out: dict[int, int] = {}
    threads = [threading.Thread(target=lambda i=i: out.update({i: batcher.submit("a", i)})) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert out == {i: i * 10 for i in range(5)}  # each its own result
    assert len(calls) == 1 and sorted(calls[0][1]) == list(range(5))  # one call: it waited for the five
    expected[0] = 0  # nothing else on its way: a lone item must not wait out the hour-long window
    lone: dict[str, int] = {}
    alone = threading.Thread(target=lambda: lone.update(r=batcher.submit("b", 7)), daemon=True)
    alone.start()
    alone.join(60)
    assert lone == {"r": 70}  # answered (a waiting batcher would still hold it)
    assert calls[-1] == ("b", [7]) and batcher.batches == 2 and batcher.items == 6
    batcher.close()


def test_a_failing_batch_fails_each_of_its_requests():
    def run(key, items):
        raise ValueError("boom")

    batcher: MicroBatcher[int] = MicroBatcher(run, wait_s=0.0, max_batch=4)
    with pytest.raises(ValueError, match="boom"):
        batcher.submit("a", 1)
    batcher.close()


@pytest.fixture
def world(tiny_world_dir, tmp_path):
    return shutil.copytree(tiny_world_dir, tmp_path / "world", ignore=shutil.ignore_patterns(".service"))


def test_concurrent_misses_ranked_together_get_the_pages_they_would_get_alone(world, tmp_path):
    frozen = {"cache_ttl_s": 0, "clock_idle_cap_s": 0}  # every request ranks, at the same instant
    with service_client(world, tmp_path / "solo", batch_max=1, **frozen) as solo:
        svc = solo.app.state.service
        assert svc.batcher is None
        users = [int(u) for u in svc.engine.state.index.user_ids[:6]]
        alone = {u: svc.timeline(u, n=20)["items"] for u in users}
    with service_client(world, tmp_path / "batched", batch_wait_ms=1000, **frozen) as batched:
        svc = batched.app.state.service
        svc.batcher._expected = lambda: len(users)  # wait for all six: one batch, deterministically
        together: dict[int, list] = {}
        threads = [threading.Thread(target=lambda u=u: together.update({u: svc.timeline(u, n=20)["items"]}))
                   for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert svc.batcher.batches == 1 and svc.batcher.items == len(users)
    for u in users:
        assert [(i["post_id"], i["score"]) for i in together[u]] == [(i["post_id"], i["score"]) for i in alone[u]]
        assert len(alone[u]) == 20
