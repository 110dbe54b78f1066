"""Rate limiting at the HTTP edge (`foryou.service.ratelimit`): timeline reads per client, 429 with
Retry-After and the one error shape past the budget, bounded and expiring state, documented."""

from __future__ import annotations

import shutil

import pytest
from contract import ContractClient

from foryou.config import ForYouConfig, ServiceConfig
from foryou.service.app import ServeSettings, create_app
from foryou.service.ratelimit import RateLimiter, limiter_for


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_burst_of_the_budget_passes_then_one_per_interval():
    clock = Clock()
    limiter = RateLimiter(600, max_clients=10, clock=clock)
    assert all(limiter.acquire("a") == 0.0 for _ in range(600))  # today's 600 a minute, all at once
    wait = limiter.acquire("a")
    assert wait == pytest.approx(0.1)  # the next one in 60/600 s
    assert limiter.acquire("b") == 0.0  # per client
    clock.t += 0.1
    assert limiter.acquire("a") == 0.0 and limiter.acquire("a") > 0
    clock.t += 60
    assert all(limiter.acquire("a") == 0.0 for _ in range(600))  # a full budget again after a quiet minute


def test_refused_requests_cost_nothing():
    clock = Clock()
    limiter = RateLimiter(2, max_clients=10, window_s=10, clock=clock)
    assert limiter.acquire("a") == 0.0 and limiter.acquire("a") == 0.0
    assert [round(limiter.acquire("a"), 6) for _ in range(100)] == [5.0] * 100
    clock.t += 5
    assert limiter.acquire("a") == 0.0


def test_state_stays_bounded_with_many_clients_and_idle_ones_expire():
    clock = Clock()
    limiter = RateLimiter(5, max_clients=1000, clock=clock)
    for i in range(50_000):
        assert limiter.acquire(f"10.0.{i // 256}.{i % 256}") == 0.0  # every new client has its budget
        clock.t += 0.001
    assert len(limiter) == 1000  # the cap, not one entry per client ever seen
    clock.t += 60  # a quiet minute: every bucket is full again, nothing left to remember
    limiter.acquire("10.9.9.9")
    assert len(limiter) == 1
    for i in range(300):  # a steady trickle of distinct clients keeps about a window's worth
        limiter.acquire(f"c{i}")
        clock.t += 1.0
    assert len(limiter) <= 13  # a lone request is forgotten one interval (60/5 s) later


def test_the_limit_comes_from_the_config():
    assert limiter_for(ServiceConfig(rate_limit_per_minute=0)) is None
    assert ForYouConfig().service.rate_limit_per_minute == 600  # the engine gate's old budget
    limiter = limiter_for(ServiceConfig(rate_limit_per_minute=7, rate_limit_clients=3))
    assert limiter is not None and (limiter.per_window, limiter.max_clients, limiter.window_s) == (7, 3, 60.0)


@pytest.fixture(scope="module")
def world(tiny_world_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("ratelimit") / "world"
    shutil.copytree(tiny_world_dir, path, ignore=shutil.ignore_patterns(".service"))
    return path


def test_timeline_reads_past_the_budget_get_429_with_retry_after(world, tmp_path):
    settings = ServeSettings(dataset=world, trace_log=tmp_path / "trace.jsonl",
                             config={"service": {"rate_limit_per_minute": 3}})
    with ContractClient(create_app(settings)) as client:  # every answer checked against the OpenAPI
        user = int(client.app.state.service.engine.user_ids[0])
        assert [client.get(f"/v1/users/{user}/timeline", params={"n": 5}).status_code for _ in range(3)] == [200] * 3
        r = client.get(f"/v1/users/{user}/timeline")
        assert r.status_code == 429
        assert int(r.headers["retry-after"]) >= 1
        assert set(r.json()) == {"detail"} and "rate limit" in r.json()["detail"]
        assert client.get("/v1/users/x/timeline").status_code == 429  # counted before anything else is looked at
        assert client.get(f"/v1/users/{user}").status_code == 200  # other routes are not limited
        assert client.get("/healthz").status_code == 200
        other = ContractClient(client.app, client=("192.0.2.7", 50000))  # another address has its own budget
        assert other.get(f"/v1/users/{user}/timeline", params={"n": 5}).status_code == 200
        assert "foryou_errors_total{kind=\"rate_limited\"}" in client.get("/metrics").text


def test_the_429_is_documented_on_the_limited_route(world, tmp_path):
    spec = create_app(ServeSettings(dataset=world, trace_log=tmp_path / "trace.jsonl")).openapi()
    limited = [(path, method) for path, ops in spec["paths"].items() for method, op in ops.items()
               if "429" in op["responses"]]
    assert limited == [("/v1/users/{user_id}/timeline", "get")]
    doc = spec["paths"]["/v1/users/{user_id}/timeline"]["get"]["responses"]["429"]
    assert doc["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/ErrorOut"
    assert "Retry-After" in doc["description"]


def test_zero_turns_the_limit_off(world, tmp_path):
    settings = ServeSettings(dataset=world, trace_log=tmp_path / "trace.jsonl",
                             config={"service": {"rate_limit_per_minute": 0}})
    app = create_app(settings)
    assert app.state.rate_limiter is None
