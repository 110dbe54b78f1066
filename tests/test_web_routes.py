"""The web app's routes without a browser (tests/test_web_app.py drives them in Chromium), the model
registry's HTTP API they call, the reports catalog, and the pieces the explorer builds its view from."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from foryou.config import ForYouConfig, HeavyRankerConfig, TrainingConfig
from foryou.data.state import models_dir, state_dir
from foryou.registry import ModelRegistry
from foryou.reports import catalog
from foryou.service.app import ServeSettings, create_app
from foryou.service.web.feed import page_diff, waterfall
from foryou.timeline.engine import MAX_OVERRIDE_PIPELINES
from foryou.training.pipeline import train_all

TOKEN = "web-routes-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def world(tiny_world_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("webr") / "w"
    shutil.copytree(tiny_world_dir, path)
    train_all(path, ForYouConfig(training=TrainingConfig(heavy_ranker=HeavyRankerConfig(epochs=1, batch_size=4096))),
              only="heavy_ranker", promote=True)
    return path


@pytest.fixture(scope="module")
def client(world: Path, tmp_path_factory: pytest.TempPathFactory):
    app = create_app(ServeSettings(dataset=world, token=TOKEN, trace_log=tmp_path_factory.mktemp("t") / "t.jsonl"))
    with TestClient(app) as c:
        yield c


def _user(client) -> str:
    idx = client.app.state.service.engine.state.index
    return str(int(idx.user_ids[np.argmax(idx.follows.out_degree())]))


def test_every_view_renders_with_its_assets_from_the_server(client):
    for path in ("/", "/ui/experiments", "/ui/models", "/ui/reports"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        assets = re.findall(r"(?:src|href)=\"(/static/[^\"]+)\"", r.text)
        assert assets, path
        for asset in assets:  # vendored, never a CDN
            assert client.get(asset).status_code == 200, asset
        assert "https://" not in r.text.split("<footer")[0]


def test_the_explorer_page_is_explained_and_its_errors_are_readable(client):
    user = _user(client)
    html = client.get(f"/ui/timeline/{user}?n=4").text
    assert html.count('class="card"') == 4 and html.count('class="why"') == 4
    assert "heavy ranker: probability × X" in html and "filters passed" in html and "Trace:" in html
    r = client.get("/ui/timeline/999999999")
    assert r.status_code == 404 and "unknown user" in r.text
    r = client.get(f"/ui/timeline/{user}?cursor=v1.garbage!!")
    assert r.status_code == 422
    r = client.get(f"/ui/timeline/{user}", params={"overrides": "weights.reply=-"})
    assert r.status_code == 422 and "weights.reply" in r.text
    r = client.get(f"/ui/timeline/{user}", params={"overrides": "timeline.diversity.max_per_author=1", "n": 6})
    assert r.status_code == 200 and 'class="diff"' in r.text


def test_load_more_continues_after_the_cursor(client):
    user = _user(client)
    first = client.get(f"/ui/timeline/{user}?n=5").text
    cursor = re.search(r'cursor=([^&"]+)&(?:amp;)?overrides', first).group(1)
    more = client.get(f"/ui/timeline/{user}?n=5&more=1&cursor={cursor}").text
    ids = lambda html: set(re.findall(r'data-post="([^"]+)"', html))  # noqa: E731
    assert len(ids(more)) == 5 and not ids(first) & ids(more)
    assert "#6" in more  # ranks continue


def test_the_user_picker_searches_by_id_prefix(client):
    user = _user(client)
    html = client.get("/ui/users", params={"q": user}).text
    assert f'data-user="{user}"' in html
    assert "no user id starts with" in client.get("/ui/users", params={"q": "zzz"}).text


def test_model_registry_api_promotes_and_rolls_back_behind_the_token(client, world):
    reg = ModelRegistry(models_dir(state_dir(world)))
    tensors, mv = reg.load("heavy_ranker", 1)
    reg.register("heavy_ranker", tensors, config=mv.config, metrics={}, dataset_fingerprint=mv.dataset_fingerprint,
                 schema=mv.schema, extra=mv.extra)
    listed = client.get("/v1/models").json()
    assert {v["label"] for v in listed["versions"]} >= {"heavy_ranker v1", "heavy_ranker v2"}
    assert client.post("/v1/models/heavy_ranker/promote", json={"version": 2}).status_code == 401
    assert client.post("/v1/models/heavy_ranker/promote", json={"version": 9}, headers=AUTH).status_code == 404
    assert client.post("/v1/models/nothing/promote", json={"version": 1}, headers=AUTH).status_code == 404
    r = client.post("/v1/models/heavy_ranker/promote", json={"version": 2}, headers=AUTH)
    assert r.status_code == 200 and r.json()["serving"]["heavy_ranker"].startswith("v2")
    r = client.post("/v1/models/heavy_ranker/rollback", headers=AUTH)
    assert r.status_code == 200 and r.json()["serving"]["heavy_ranker"].startswith("v1")
    r = client.post("/v1/models/heavy_ranker/rollback", headers=AUTH)  # nothing earlier than v1
    assert r.status_code == 409 and "no earlier promoted version" in r.json()["detail"]


def test_reports_are_listed_from_the_catalog_and_opened(client, world, tmp_path):
    state = state_dir(world)
    report = tmp_path / "r" / "index.html"
    report.parent.mkdir()
    report.write_text("<html><title>an eval</title></html>")
    catalog.record(state, "eval", report, "my eval")
    assert "my eval" in client.get("/ui/reports").text
    assert client.get("/ui/reports/0").text == report.read_text()
    assert client.get("/ui/reports/5").status_code == 404


def test_the_catalog_skips_deleted_reports_and_damaged_lines(tmp_path):
    a, b = tmp_path / "a.html", tmp_path / "b.html"
    a.write_text("a")
    b.write_text("b")
    catalog.record(tmp_path, "eval", a, "A")
    catalog.record(tmp_path, "simulation", b, "B")
    with (tmp_path / catalog.CATALOG).open("a") as f:
        f.write('{"kind": "eval", "path": \n')  # a crash mid-line
    catalog.record(tmp_path, "eval", a, "A again")  # the same file noted twice: listed once, latest title
    b.unlink()
    assert [(e.title, e.kind) for e in catalog.entries(tmp_path)] == [("A again", "eval")]
    assert catalog.entries(tmp_path / "nowhere") == []


def test_live_metrics_count_timeline_requests(client):
    before = client.get("/ui/metrics.json").json()
    user = _user(client)
    for _ in range(3):
        assert client.get(f"/v1/users/{user}/timeline?n=3").status_code == 200
    after = client.get("/ui/metrics.json").json()
    assert after["count"] - before["count"] == 3
    assert sum(after["cache"].values()) - sum(before["cache"].values()) == 3
    assert after["buckets"]["+Inf"] - before["buckets"].get("+Inf", 0) == 3


def test_ad_hoc_override_sets_keep_a_bounded_number_of_pipelines(client):
    engine = client.app.state.service.engine
    user = _user(client)
    for k in range(MAX_OVERRIDE_PIPELINES + 5):
        engine.recommend(int(user), n=2, overrides={"weights": {"reply": float(k + 1)}})
    assert len(engine._arm_pipelines) == MAX_OVERRIDE_PIPELINES


def test_waterfall_places_a_candidate_pipelines_steps_inside_its_span():
    trace = {"steps": [
        {"kind": "gate", "name": "g", "n_in": 0, "n_out": 0, "duration_ms": 1.0, "pipeline": None},
        {"kind": "source", "name": "s", "n_in": 0, "n_out": 9, "duration_ms": 2.0, "pipeline": "p"},
        {"kind": "scorer", "name": "l", "n_in": 9, "n_out": 9, "duration_ms": 1.0, "pipeline": "p"},
        {"kind": "candidate_pipeline", "name": "p", "n_in": 0, "n_out": 9, "duration_ms": 3.0, "pipeline": None},
        {"kind": "filter", "name": "f", "n_in": 9, "n_out": 4, "duration_ms": 4.0, "pipeline": None, "removed": 5},
    ]}
    w = waterfall(trace)
    assert [r["name"] for r in w["rows"]] == ["g", "p", "s", "l", "f"]
    assert [r["start"] for r in w["rows"]] == [0.0, 1.0, 1.0, 3.0, 4.0]
    assert w["total_ms"] == 8.0 and w["rows"][-1]["removed"] == 5


def test_page_diff_names_new_moved_and_departed_posts():
    d = page_diff(["a", "b", "c"], ["c", "a", "x"])
    assert d["moves"] == [{"post_id": "c", "rank": 1, "before": 3}, {"post_id": "a", "rank": 2, "before": 1},
                          {"post_id": "x", "rank": 3, "before": None}]
    assert d["left"] == ["b"] and d["changed"]
    assert not page_diff(["a"], ["a"])["changed"]


def test_the_web_app_is_optional_and_its_cost_is_measured(world, tmp_path):
    from foryou.bench.web import bench_web_overhead

    app = create_app(ServeSettings(dataset=world, web=False, trace_log=tmp_path / "t.jsonl"))
    with TestClient(app) as c:
        assert c.get("/").status_code == 404 and c.get("/ui/models").status_code == 404
        assert c.get("/v1/models").status_code == 200  # the API stays
    r = bench_web_overhead(world, requests=20, rounds=2, trace_log=tmp_path / "b.jsonl")  # raises on a wrong status
    assert set(r["timeline_hit"]) == {"p50_ms_with_web", "p50_ms_without_web", "overhead_ms"}


def test_a_running_server_serves_what_is_promoted_elsewhere(client, world):
    """`foryou models promote` (or another worker's POST) changes the registry on disk: the server notices
    within a second, reloads, and drops the pages it cached from the previous version."""
    reg = ModelRegistry(models_dir(state_dir(world)))
    if len([v for v in reg.list() if v.name == "heavy_ranker"]) < 2:
        tensors, mv = reg.load("heavy_ranker", 1)
        reg.register("heavy_ranker", tensors, config=mv.config, metrics={},
                     dataset_fingerprint=mv.dataset_fingerprint, schema=mv.schema, extra=mv.extra)
    user = _user(client)
    served = client.get("/readyz").json()["models"]["heavy_ranker"]
    other = 2 if served.startswith("v1") else 1
    assert client.get(f"/v1/users/{user}/timeline?n=3").status_code == 200  # a page in the cache
    svc = client.app.state.service
    svc.promotions.every_s, svc.promotions._next = 0.0, 0.0  # look at once (the server looks once a second)
    reg.promote("heavy_ranker", other)
    page = client.get(f"/v1/users/{user}/timeline?n=3").json()
    assert not page["cached"] and page["models"]["heavy_ranker"].startswith(f"v{other}")
    assert client.get("/readyz").json()["models"]["heavy_ranker"].startswith(f"v{other}")
