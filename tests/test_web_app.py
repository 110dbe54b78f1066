"""The web app in a real browser: Playwright driving Debian's Chromium (installed by `.ci/run`) against a
live server on the tiny world, with a write token. Each view is screenshotted (pytest's tmp dir, or
$FORYOU_SCREENSHOTS when set: the README's pictures) and every test fails on a browser console error."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from foryou.config import ForYouConfig, HeavyRankerConfig, TrainingConfig
from foryou.data.state import models_dir, state_dir
from foryou.registry import ModelRegistry
from foryou.service.app import ServeSettings, create_app
from foryou.training.pipeline import train_all

CHROMIUM = shutil.which("chromium")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (.ci/run installs it)")]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency (./dev setup)")
TOKEN = "web-test-token"
FAST = ForYouConfig(training=TrainingConfig(heavy_ranker=HeavyRankerConfig(epochs=2, batch_size=2048)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def world(tiny_world_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny world with two heavy-ranker versions (v2 promoted after v1, so there is one to roll back to)
    and an evaluation report in its catalog."""
    path = tmp_path_factory.mktemp("web") / "w"
    shutil.copytree(tiny_world_dir, path)
    train_all(path, FAST, only="heavy_ranker", promote=False)
    reg = ModelRegistry(models_dir(state_dir(path)))
    tensors, mv = reg.load("heavy_ranker", 1)
    reg.register("heavy_ranker", tensors, config=mv.config, metrics={}, dataset_fingerprint=mv.dataset_fingerprint,
                 schema=mv.schema, extra=mv.extra)
    reg.promote("heavy_ranker", 1)
    reg.promote("heavy_ranker", 2)
    from foryou.eval.evaluator import evaluate
    from foryou.eval.report import write_report
    from foryou.reports import catalog

    result = evaluate(path, "temporal", ["popularity"], ForYouConfig(), max_users=40, seed=0, oracle=False,
                      tune=False)
    _, html = write_report(result, path.parent / "eval")
    catalog.record(state_dir(path), "eval", html, "foryou eval w · temporal · 40 users")
    return path


@pytest.fixture(scope="module")
def server(world: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """The service with the web app, on a free port in this process (its Service is at hand for checks)."""
    app = create_app(ServeSettings(dataset=world, token=TOKEN,
                                   trace_log=tmp_path_factory.mktemp("web-logs") / "trace.jsonl"))
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 120
    while not srv.started and time.time() < deadline:
        time.sleep(0.1)
    url = f"http://127.0.0.1:{port}"
    while httpx.get(url + "/readyz").status_code != 200 and time.time() < deadline:
        time.sleep(0.2)
    yield url, app.state.service
    srv.should_exit = True
    thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, server) -> Iterator[object]:
    """A fresh tab; console errors and uncaught exceptions fail the test (`expected_errors` lists the
    failed requests a test provokes on purpose)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(f"uncaught: {e}"))
    tab.expected_errors = []
    yield tab
    context.close()
    unexpected = [e for e in errors if not any(x in e for x in tab.expected_errors)]
    assert not unexpected, unexpected


def _shoot(tab, name: str, tmp_path: Path) -> None:
    out = Path(os.environ.get("FORYOU_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(out / f"{name}.png"), full_page=False)


def _save_token(tab, token: str = TOKEN) -> None:
    tab.fill("#token", token)
    tab.click("#token-form button")
    tab.wait_for_selector("#status:has-text('token')")


def _user_with_repeated_author(svc) -> tuple[str, str]:
    """A user whose 10-post page shows its top author more than once (so "not interested" has other posts
    of that author to drop), and that author."""
    engine = svc.engine
    for u in engine.state.index.user_ids[:300].tolist():
        items = engine.recommend(u, n=10, now=svc.clock() + 1).items
        authors = [it.author_id for it in items]
        if authors and authors.count(authors[0]) > 1:
            return str(u), str(authors[0])
    pytest.fail("no user of the tiny world has an author twice on the first page")


def test_the_explorer_shows_a_users_page_as_explained_cards(page, server, tmp_path):
    url, _ = server
    page.goto(url + "/")
    first = page.locator("#user-list .user-link").first
    user = first.get_attribute("data-user")
    first.click()
    page.wait_for_selector("#page .card")
    cards = page.locator("#cards .card")
    assert cards.count() == 10
    assert page.locator("#cards .card details.why").count() == 10
    page.locator("#cards .card details.why summary").first.click()
    heads = page.locator("#cards .card").first.locator("table.heads tbody tr")
    assert heads.count() == 9 and "reply" in heads.all_inner_texts()[0] + "".join(heads.all_inner_texts())
    assert page.url.endswith(f"/?user={user}")  # the view is a link
    assert f"@{user}" in page.locator(".profile h2").inner_text()
    _shoot(page, "explorer", tmp_path)
    page.set_viewport_size({"width": 390, "height": 844})
    _shoot(page, "explorer-390", tmp_path)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1  # no sideways scrolling


def test_not_interested_removes_the_post_and_the_authors_other_posts(page, server):
    url, svc = server
    user, author = _user_with_repeated_author(svc)
    page.goto(f"{url}/?user={user}")
    page.wait_for_selector("#page .card")
    top = page.locator("#cards .card").first
    post = top.get_attribute("data-post")
    assert top.get_attribute("data-author") == author
    assert page.locator(f"#cards .card[data-author='{author}']").count() > 1
    _save_token(page)
    top.locator("button[data-kind='not_interested']").click()
    page.wait_for_selector("#status:has-text('stored')")
    page.wait_for_function(f"!document.querySelector('#cards .card[data-post=\"{post}\"]')")
    page.wait_for_selector("#page .card")
    assert page.locator(f"#cards .card[data-author='{author}']").count() == 0
    assert page.locator("#cards .card").count() == 10  # the page is refilled, not emptied


def test_load_more_overrides_and_the_trace(page, server, tmp_path):
    url, svc = server
    user = str(svc.engine.state.index.user_ids[5])
    page.goto(f"{url}/?user={user}")
    page.wait_for_selector("#page .card")
    page.click("button.more")
    page.wait_for_function("document.querySelectorAll('#cards .card').length === 20")
    ids = page.locator("#cards .card").evaluate_all("cs => cs.map(c => c.dataset.post)")
    assert len(set(ids)) == 20  # the cursor excludes what the first page showed
    page.click("#trace summary")
    steps = page.locator("#trace table.waterfall tbody tr")
    assert steps.count() > 15 and "in_network" in steps.all_inner_texts()[8] + "".join(steps.all_inner_texts())
    _shoot(page, "trace", tmp_path)
    page.fill("#overrides", "weights.reply=270\ntimeline.diversity.max_per_author=1")
    page.click("form.overrides button[type=submit]")
    page.wait_for_selector("section.diff")
    authors = page.locator("#cards .card").evaluate_all("cs => cs.map(c => c.dataset.author)")
    assert len(authors) == len(set(authors))  # one post per author: the override is in force
    assert page.locator("section.diff .moves li").count() == 10
    _shoot(page, "overrides-diff", tmp_path)
    page.fill("#overrides", "weights.nonsense=1")
    page.click("form.overrides button[type=submit]")
    page.wait_for_selector("#timeline .error:has-text('weights.nonsense')")
    page.expected_errors.append("422")  # the refused override, on purpose


def test_creating_an_experiment_needs_the_token_and_shows_live_results(page, server, tmp_path):
    url, svc = server
    page.goto(url + "/ui/experiments")
    page.fill("#create-experiment input[name=name]", "web-arm-test")
    page.fill("#create-experiment .arm-in:nth-of-type(2) .arm-overrides", "weights.reply=27")
    page.expected_errors.append("401")  # the refused create, on purpose
    page.click("#create-experiment button[type=submit]")
    page.wait_for_selector("#status.bad:has-text('401')")
    assert page.locator("#exp-web-arm-test").count() == 0
    _save_token(page)
    page.click("#create-experiment button[type=submit]")
    page.wait_for_selector("#exp-web-arm-test .results")
    assert "running" in page.locator("#exp-web-arm-test h2").inner_text()
    assert '"reply": 27' in page.locator("#exp-web-arm-test .arms").inner_text().replace('"reply":27', '"reply": 27')
    for u in svc.engine.state.index.user_ids[:60].tolist():  # exposures and outcomes through the API
        items = httpx.get(f"{url}/v1/users/{u}/timeline?n=5").json()["items"]
        httpx.post(f"{url}/v1/engagements", json={"user_id": u, "post_id": items[0]["post_id"], "kind": "like"},
                   headers={"Authorization": f"Bearer {TOKEN}"}).raise_for_status()
    page.reload()
    page.wait_for_selector("#exp-web-arm-test .results-table")
    arms = page.locator("#exp-web-arm-test .results-table").first.locator("tbody tr").all_inner_texts()
    assert [a.split()[0] for a in arms] == ["control", "treatment"]
    _shoot(page, "experiments", tmp_path)
    page.click("#exp-web-arm-test button.stop")
    page.wait_for_selector("#exp-web-arm-test h2:has-text('stopped')")


def test_promote_and_roll_back_a_model(page, server, tmp_path):
    url, _ = server

    def serving() -> str:
        return httpx.get(url + "/v1/models").json()["serving"]["heavy_ranker"]

    assert serving().startswith("v2")
    page.goto(url + "/ui/models")
    _save_token(page)
    page.click("#model-heavy_ranker button.rollback")
    page.wait_for_selector("#status:has-text('rolled back')")
    page.wait_for_selector("#model-heavy_ranker tr.promoted[data-version='1']")
    assert serving().startswith("v1")
    page.click("#model-heavy_ranker button.promote[data-version='2']")
    page.wait_for_selector("#model-heavy_ranker tr.promoted[data-version='2']")
    assert serving().startswith("v2")
    _shoot(page, "models", tmp_path)


def test_reports_open_and_live_charts_update(page, server, tmp_path):
    url, svc = server
    page.goto(url + "/ui/reports")
    page.wait_for_function("document.querySelectorAll('#chart-rps canvas').length > 0")
    page.wait_for_selector("#now-rps:has-text('now')")  # two polls: the charts have a baseline
    users = svc.engine.state.index.user_ids[20:60].tolist()
    for u in users:  # traffic for the charts, spread over a few polls
        assert httpx.get(f"{url}/v1/users/{u}/timeline?n=5").status_code == 200
        time.sleep(0.1)
    page.wait_for_function("parseFloat(document.querySelector('#now-rps').textContent.slice(4)) > 0", timeout=15_000)
    page.wait_for_function("!document.querySelector('#gauges').innerText.includes('waiting')", timeout=15_000)
    _shoot(page, "reports", tmp_path)
    page.click("ul.reports a")
    page.wait_for_load_state()
    assert "popularity" in page.content()
