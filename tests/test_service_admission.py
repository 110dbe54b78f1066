"""Admission control (`foryou.service.admission`): a bounded queue answers 503 with Retry-After at once, work
that would start past its deadline is shed, and nothing a shed write carried is stored."""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest
from contract import service_client

from foryou.service.admission import Admission, Overloaded


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_bound_and_the_expected_wait_refuse_work():
    clock = Clock()
    gate = Admission(max_pending=3, max_queue_ms=50, clock=clock)
    first = gate.admit()
    started = gate.start(first)
    clock.t += 0.020  # one unit of work takes 20 ms
    gate.release(started)
    assert gate.service_s == pytest.approx(0.020)
    admitted = [gate.admit(), gate.admit(), gate.admit()]  # 0, 20, 40 ms of expected wait: within 50 ms
    with pytest.raises(Overloaded, match="3 requests already queued"):  # 60 ms expected, and the bound is 3
        gate.admit()
    assert gate.pending == 3
    for a in admitted:
        gate.release(gate.start(a))
    assert gate.pending == 0 and gate.admit()


def test_work_that_starts_past_its_deadline_is_shed_and_released():
    clock = Clock()
    gate = Admission(max_pending=10, max_queue_ms=50, clock=clock)
    admitted = gate.admit()
    clock.t += 0.101  # waited more than twice the queue budget
    with pytest.raises(Overloaded, match="past its deadline"):
        gate.start(admitted)
    assert gate.pending == 0 and gate.service_s == 0  # released, and no service time learned from it
    on_time = gate.admit()
    clock.t += 0.099
    assert gate.start(on_time) == clock.t


@pytest.fixture
def world(tiny_world_dir, tmp_path):
    return shutil.copytree(tiny_world_dir, tmp_path / "world", ignore=shutil.ignore_patterns(".service"))


def test_a_full_queue_answers_503_with_retry_after_and_stores_nothing(world, tmp_path):
    with service_client(world, tmp_path, max_pending=1, cache_ttl_s=0) as client:
        svc = client.app.state.service
        users = [int(u) for u in svc.engine.state.index.user_ids[:2]]
        entered, release = threading.Event(), threading.Event()
        timeline = svc.timeline

        def slow_timeline(*args, **kwargs):  # the one admitted miss holds the worker's only slot
            entered.set()
            assert release.wait(30)
            return timeline(*args, **kwargs)

        svc.timeline = slow_timeline
        held: dict = {}
        worker = threading.Thread(target=lambda: held.update(r=client.get(f"/v1/users/{users[0]}/timeline")))
        worker.start()
        try:
            assert entered.wait(30)
            shed = client.get(f"/v1/users/{users[1]}/timeline")
            assert shed.status_code == 503 and shed.headers["retry-after"] == "1"
            assert "overloaded" in shed.json()["detail"]
            before = svc.store.count()
            post = int(svc.engine.state.index.post_id[0])
            write = client.post("/v1/engagements", json={"user_id": users[1], "post_id": post, "kind": "like"})
            assert write.status_code == 503 and write.headers["retry-after"] == "1"
            assert svc.store.count() == before  # a shed write stored nothing
        finally:
            release.set()
            worker.join(30)
        assert held["r"].status_code == 200 and len(held["r"].json()["items"]) > 0
        svc.timeline = timeline
        assert client.get(f"/v1/users/{users[1]}/timeline").status_code == 200  # the slot is free again
        metrics = client.get("/metrics").text
        reasons = {line.split('"')[1]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("foryou_shed_total{")}
        assert reasons.get("queue", 0) >= 2 and np.isfinite(list(reasons.values())).all()
