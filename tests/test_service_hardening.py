"""The service's doors, tried as a careless client and as an attacker would (issue 12): the token on
every state-changing route, forged cursors, deep JSON, huge bad bodies, chunked uploads, slow
headers, non-finite config, the OpenAPI contract's details, offline docs, live drift/exposure gauges."""

from __future__ import annotations

import base64
import re
import shutil
import socket
import threading
import time

import numpy as np
import orjson
import pytest
import uvicorn
from contract import service_client
from pydantic import ValidationError

from foryou.config import ForYouConfig, parse_overrides
from foryou.service.limits import json_depth
from foryou.service.schemas import ID_PATTERN
from foryou.service.security import SAFE_METHODS
from foryou.service.server import HEADER_TIMEOUT_ENV, HeaderTimeoutProtocol

TOKEN = "s3cret-t0ken"


@pytest.fixture(scope="module")
def world(tiny_world_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("hard") / "world"
    shutil.copytree(tiny_world_dir, path, ignore=shutil.ignore_patterns(".service"))
    return path


@pytest.fixture(scope="module")
def client(world, tmp_path_factory):
    with service_client(world, tmp_path_factory.mktemp("trace"), token=TOKEN) as c:
        yield c


def _user_and_post(client) -> tuple[int, int]:
    idx = client.app.state.service.engine.state.index
    return int(idx.user_ids[np.argmax(idx.follows.out_degree())]), int(idx.post_id[0])


def _filled(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _routes(routes, prefix: str = ""):
    """(method, path) of every route, into included routers (FastAPI keeps them nested)."""
    for r in routes:
        inner = getattr(r, "original_router", None)
        if inner is not None:
            yield from _routes(inner.routes, prefix + r.include_context.prefix)
        else:
            for m in getattr(r, "methods", None) or ():
                yield m, prefix + r.path


# -- 1. every state-changing route needs the token --------------------------------------------------


def test_every_state_changing_route_refuses_a_request_without_the_token(client):
    routes = [(m, path) for m, path in _routes(client.app.routes) if m not in SAFE_METHODS]
    assert {("POST", "/v1/experiments"), ("POST", "/v1/experiments/{name}/stop"), ("POST", "/v1/engagements"),
            ("POST", "/v1/posts"), ("POST", "/v1/follows")} <= set(routes)
    user, post = _user_and_post(client)
    body = {"name": "evil", "arms": {"a": {}, "b": {"overrides": {"weights": {"like": 100}}}}}
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            r = client.request(method, _filled(path), json=body, headers=headers)
            assert r.status_code == 401, (method, path, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer" and r.json() == {"detail": "missing or wrong bearer token"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/v1/experiments").json() == []  # nothing was created
    assert client.post("/v1/engagements", json={"user_id": user, "post_id": post, "kind": "click"},
                       headers=auth).status_code == 200
    assert client.post("/v1/experiments", json={**body, "name": "ok"}, headers=auth).status_code == 200
    assert client.post("/v1/experiments/ok/stop", headers=auth).json()["status"] == "stopped"
    # an unsupported method is still a 405 (routing first), not a 401
    assert client.delete("/v1/engagements").status_code == 405


def test_the_schema_declares_the_bearer_scheme_on_exactly_the_writes(client, world, tmp_path):
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "the server's --token"}
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            assert ("security" in op) == (method.upper() not in SAFE_METHODS), (method, path)
            if "security" in op:
                assert "401" in op["responses"], (method, path)
    with service_client(world, tmp_path) as open_client:  # no token: nothing to declare
        assert "securitySchemes" not in open_client.get("/openapi.json").json().get("components", {})


# -- 3. forged cursors -------------------------------------------------------------------------------


def _varint(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def test_a_forged_cursor_whose_ids_overflow_is_a_422(client):
    user, _ = _user_and_post(client)
    raw = _varint(2**62) + _varint(2**62 - 1)  # each id fits in 63 bits; their running sum passes 2^63
    forged = "v1." + base64.urlsafe_b64encode(raw).decode().rstrip("=")
    r = client.get(f"/v1/users/{user}/timeline", params={"cursor": forged})
    assert r.status_code == 422 and r.json()["detail"] == "malformed cursor"


# -- 4. deep JSON ------------------------------------------------------------------------------------


def test_deeply_nested_json_is_refused_before_parsing(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/v1/engagements", "/v1/experiments", "/v1/follows"):
        for depth in (33, 1000, 100_000):
            body = b"[" * depth + b"]" * depth
            r = client.post(path, content=body, headers={**auth, "content-type": "application/json"})
            assert r.status_code == 422, (path, depth)
            assert r.json() == {"detail": "JSON nested deeper than 32 levels"}
    # brackets inside a string are not nesting
    nested = {"name": "deep", "layer": "deep", "arms": {"a": {}, "b": {}}, "description": "[" * 1500}
    assert client.post("/v1/experiments", json=nested, headers=auth).status_code == 200


def test_json_depth_ignores_brackets_inside_strings():
    assert json_depth(b'{"a":[1,{"b":[]}]}') == 4
    assert json_depth(orjson.dumps({"s": "[[[{{{", "t": ['\\"[[']})) == 2
    assert json_depth(b'{"a":"\\\\","b":[[]]}') == 3  # an escaped backslash ends before the quote
    assert json_depth(b"[" * 1000 + b"]" * 1000) == 1000
    assert json_depth(b"7") == 0


# -- 5. error bodies never echo the input ----------------------------------------------------------------


def test_a_huge_bad_batch_gets_a_small_answer_without_the_input(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    marker = "ECHO-ME-NOT-"
    events = [{"user_id": marker + str(i), "post_id": i, "kind": "like"} for i in range(12_000)]
    body = orjson.dumps({"events": events})
    assert len(body) > 500_000
    r = client.post("/v1/engagements", content=body, headers={**auth, "content-type": "application/json"})
    assert r.status_code == 422
    assert len(r.content) <= 4096 and marker not in r.text
    err = r.json()
    assert isinstance(err["detail"], str) and err["detail"]
    assert 1 <= len(err["errors"]) <= 20 and {"loc", "msg", "type"} == set(err["errors"][0])


def test_an_attacker_sized_key_is_cut_in_the_error(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    user, post = _user_and_post(client)
    r = client.post("/v1/engagements", json={"user_id": user, "post_id": post, "kind": "like", "k" * 100_000: 1},
                    headers=auth)
    assert r.status_code == 422 and len(r.content) <= 4096


# -- 7. chunked bodies and slow headers ---------------------------------------------------------------------


def test_an_oversized_chunked_body_is_a_413(world, tmp_path):
    with service_client(world, tmp_path, max_body_bytes=4096) as c:
        def chunks():
            for _ in range(64):
                yield b" " * 1024

        r = c.post("/v1/engagements", content=chunks(), headers={"content-type": "application/json"})
        assert "content-length" not in r.request.headers  # it really went chunked
        assert r.status_code == 413 and r.json() == {"detail": "request body too large"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_half_sent_requests_are_closed_after_the_header_timeout(monkeypatch):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    monkeypatch.setenv(HEADER_TIMEOUT_ENV, "0.5")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, http=HeaderTimeoutProtocol,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        slow = []
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # never finishes its header
            slow.append(s)
        idle = socket.create_connection(("127.0.0.1", port))  # connects and sends nothing
        for s in [*slow, idle]:
            s.settimeout(10)  # a generous bound on a 0.5 s timeout; without it, recv waits forever
            assert s.recv(1024) == b""  # closed by the server
            s.close()
        with socket.create_connection(("127.0.0.1", port)) as ok:  # a prompt client is served
            ok.settimeout(10)
            ok.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert ok.recv(1024).startswith(b"HTTP/1.1 200")
    finally:
        server.should_exit = True
        thread.join(10)


# -- 8. config values are finite and in range ---------------------------------------------------------------


@pytest.mark.parametrize("pair", ["weights.like=nan", "weights.reply=inf", "weights.report=-Infinity",
                                  "timeline.exploration.weight=NaN", "timeline.sources.uteg=100000000",
                                  "weights.like=-100", "timeline.sources.max_age_hours=1e308"])
def test_non_finite_or_out_of_range_config_is_refused(pair):
    with pytest.raises(ValidationError):
        ForYouConfig.model_validate(parse_overrides([pair]))


def test_an_experiment_cannot_smuggle_a_non_finite_weight(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    body = b'{"name":"nan","arms":{"a":{},"b":{"overrides":{"weights":{"like":NaN}}}}}'
    assert client.post("/v1/experiments", content=body,
                       headers={**auth, "content-type": "application/json"}).status_code == 422


# -- 11. the contract's details ----------------------------------------------------------------------------------


def test_every_error_status_is_documented_with_the_error_shape(client):
    spec = client.get("/openapi.json").json()
    error_ref = "#/components/schemas/ErrorOut"
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for status, resp in op["responses"].items():
                if status.startswith(("4", "5")):
                    assert resp["content"]["application/json"]["schema"]["$ref"] == error_ref, (method, path, status)
    timeline = spec["paths"]["/v1/users/{user_id}/timeline"]["get"]
    assert {"404", "422"} <= set(timeline["responses"])
    cursor = next(p for p in timeline["parameters"] if p["name"] == "cursor")
    assert cursor["schema"]["anyOf"][0]["pattern"] == r"^(v[12]\.[A-Za-z0-9_-]*)?$"
    user, _ = _user_and_post(client)
    assert client.get(f"/v1/users/{user}/timeline", params={"cursor": ""}).status_code == 200  # the first page
    user_id = next(p for p in timeline["parameters"] if p["name"] == "user_id")
    assert user_id["schema"]["type"] == "string" and user_id["schema"]["pattern"] == ID_PATTERN  # the platform's ids


def test_a_422_detail_is_a_string_as_documented(client):
    r = client.get(f"/v1/users/{'x' * 129}/timeline")
    assert r.status_code == 422 and isinstance(r.json()["detail"], str) and r.json()["errors"][0]["loc"] == [
        "path", "user_id"]


def test_ids_must_be_json_integers_or_strings(client):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    user, post = _user_and_post(client)
    for bad in ({"user_id": True}, {"post_id": post + 0.5}, {"value": "1"}, {"user_id": -1}, {"user_id": "a b"}):
        body = {"user_id": user, "post_id": post, "kind": "click", **bad}
        assert client.post("/v1/engagements", json=body, headers=auth).status_code == 422, bad
    ok = {"user_id": float(user), "post_id": post, "kind": "click"}  # 7.0 is an integer in JSON Schema
    assert client.post("/v1/engagements", json=ok, headers=auth).status_code == 200
    as_text = {"user_id": str(user), "post_id": str(post), "kind": "click"}  # an int dataset reads "7" as 7
    assert client.post("/v1/engagements", json=as_text, headers=auth).status_code == 200
    unknown = {"user_id": "nobody", "post_id": post, "kind": "click"}
    assert client.post("/v1/engagements", json=unknown, headers=auth).status_code == 404
    assert client.post("/v1/follows", json={"user_id": user, "target_id": user}, headers=auth).status_code == 409


def test_options_and_405_name_every_method_of_the_path(client):
    for method in ("OPTIONS", "DELETE", "PUT"):
        r = client.request(method, "/v1/experiments")
        assert r.status_code == 405 and r.headers["allow"] == "GET, POST", method


# -- 12. docs without internet ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_every_asset_from_the_server(client, page):
    html = client.get(page).text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert assets and not [a for a in assets if a.startswith(("http:", "https:", "//"))], assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset


# -- 13. drift and exposure gauges from live traffic ----------------------------------------------------------------


def test_metrics_serve_exposure_and_prediction_drift_of_live_traffic(world, tmp_path):
    from foryou.monitoring.live import LiveMonitor

    with service_client(world, tmp_path) as c:
        svc = c.app.state.service
        idx = svc.engine.state.index
        svc.monitor = LiveMonitor(idx.user_ids, idx.author_followers, window=200, reference=100)
        users = idx.user_ids[np.argsort(-idx.follows.out_degree())[:40]]
        served = 0
        for u in users:
            page = c.get(f"/v1/users/{int(u)}/timeline", params={"n": 10}).json()
            served += len(page["items"])
            assert all(it["network_reason"].startswith(("in-network", "out-of-network")) for it in page["items"])
        assert served > 300
        text = c.get("/metrics").text
        gini = re.search(r'^foryou_exposure\{measure="creator_gini"\} ([0-9.e+-]+)$', text, re.M)
        share = re.search(r'^foryou_exposure\{measure="out_of_network_share"\} ([0-9.e+-]+)$', text, re.M)
        assert gini and 0 < float(gini.group(1)) < 1 and share and 0 <= float(share.group(1)) <= 1
        assert re.search(r'^foryou_exposure\{measure="impressions"\} 200\.0$', text, re.M)  # the window
        for head in ("like", "reply", "click"):
            psi = re.search(rf'^foryou_prediction_psi\{{head="{head}"\}} ([0-9.e+-]+)$', text, re.M)
            assert psi and float(psi.group(1)) >= 0, head
