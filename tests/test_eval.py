"""Offline evaluation: no leakage from the test window, protocols, baselines, and `foryou eval` end to end."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from foryou.data.dataset import Dataset
from foryou.eval.baselines import BASELINES, build_catalog, make_baseline
from foryou.eval.protocols import minirecsys, temporal
from foryou.eval.report import fmt, params_text
from foryou.eval.system import serve_pages
from foryou.timeline.engine import RecommendationEngine


@pytest.fixture(scope="module")
def ds(tiny_world_dir) -> Dataset:
    return Dataset.load(tiny_world_dir)


def _with_engagements(ds: Dataset, table: pa.Table) -> Dataset:
    tables = dict(ds.tables)
    tables["engagements"] = pa.concat_tables([ds.engagements, Dataset.conform("engagements", table)])
    return Dataset(tables, ds.manifest, None)


def _pages_and_lists(ds: Dataset, split, users: np.ndarray):
    engine = RecommendationEngine(Dataset(ds.tables, ds.manifest, None), as_of=split.as_of)
    sub = type(split)(**{**split.__dict__, "users": users})
    pages = serve_pages(engine, sub, 35)
    catalog = build_catalog(sub, engine.config.timeline.sources.max_age_hours)
    lists = {}
    for name in BASELINES:
        b = make_baseline(name)
        b.fit(sub, catalog)
        lists[name] = b.recommend(35)
    return pages, catalog, lists


def test_a_test_window_engagement_cannot_change_the_evaluated_page(ds):
    split = temporal(ds)
    t = split.as_of
    users = split.users[:12]
    before, cat_before, lists_before = _pages_and_lists(ds, split, users)
    # At and after the split: the first user likes, reposts and replies to (and blocks the author of) the post
    # on top of their page, and every evaluated user likes our page's second post; one existing test-window
    # engagement is altered in kind and time.
    u0, top = int(users[0]), int(before.post_id[0, 0])
    second = before.post_id[:, 1]
    extra = pa.table({"user_id": [u0] * 4 + users.tolist(), "post_id": [top] * 4 + second.tolist(),
                      "kind": ["like", "repost", "reply", "block"] + ["like"] * len(users),
                      "created_at": [t, t, t + 60, t + 120] + [t + 5] * len(users), "value": [1.0] * (4 + len(users))})
    leaked = _with_engagements(ds, extra)
    e = leaked.engagements
    times = e["created_at"].to_numpy().copy()
    kinds = np.array(e["kind"].to_pylist(), dtype=object)
    i = int(np.flatnonzero(times >= t)[0])
    times[i], kinds[i] = times[i] + 1, "report"
    tables = dict(leaked.tables)
    tables["engagements"] = e.set_column(e.schema.get_field_index("created_at"), "created_at", pa.array(times)) \
        .set_column(e.schema.get_field_index("kind"), "kind", pa.array(kinds.tolist()))
    leaked = Dataset(tables, ds.manifest, None)

    after, cat_after, lists_after = _pages_and_lists(leaked, temporal(leaked), users)
    assert np.array_equal(before.post_id, after.post_id)
    assert np.array_equal(before.score, after.score)
    for h in before.predictions:
        assert np.array_equal(before.predictions[h], after.predictions[h], equal_nan=True)
    assert np.array_equal(cat_before.post_id, cat_after.post_id)
    assert (cat_before.exclude != cat_after.exclude).nnz == 0
    for name in BASELINES:
        assert np.array_equal(lists_before[name].post_id, lists_after[name].post_id), name
    # The same block one second before the split does change the page (the check can fail).
    early = _with_engagements(ds, pa.table({"user_id": [u0], "post_id": [top], "kind": ["block"],
                                            "created_at": [t - 1], "value": [1.0]}))
    engine = RecommendationEngine(early, as_of=t)
    assert top not in [item.post_id for item in engine.recommend(u0, n=35, now=t).items]


def test_temporal_truth_is_test_window_positives_on_posts_known_at_the_split(ds):
    split = temporal(ds)
    e = ds.engagements
    t = e["created_at"].to_numpy()
    kinds = np.array(e["kind"].to_pylist())
    created = dict(zip(ds.posts["post_id"].to_pylist(), ds.posts["created_at"].to_pylist(), strict=True))
    want = {(u, p) for u, p, tt, k in zip(e["user_id"].to_pylist(), e["post_id"].to_pylist(), t, kinds, strict=True)
            if tt >= split.as_of and k in ("like", "repost", "reply") and created[p] < split.as_of}
    got = set(zip(split.users[split.truth_user].tolist(), split.truth_post.tolist(), strict=True))
    assert got == want and len(got) > 0
    assert split.as_of == ds.manifest.split.valid_end
    assert split.train.engagements["created_at"].to_numpy().max() < split.as_of


def test_minirecsys_protocol_reproduces_the_mimics_split(ds):
    with pytest.raises(ValueError, match="equal timestamps"):  # the world logs many events per second
        minirecsys(ds)
    _, first = np.unique(ds.engagements["created_at"].to_numpy(), return_index=True)
    tables = {**ds.tables, "engagements": ds.engagements.take(np.sort(first))}
    ds = Dataset(tables, ds.manifest, None)
    split = minirecsys(ds)
    t = np.sort(ds.engagements["created_at"].to_numpy(), kind="stable")
    n = len(t)
    assert split.as_of == t[int(0.8 * n)]
    assert split.train.engagements.num_rows == int(0.8 * n)
    assert len(split.users) <= 100 and np.all(np.diff(split.users) > 0)
    assert split.k_values == (5, 10, 20)
    test = ds.engagements.filter(pc.greater_equal(ds.engagements["created_at"], split.as_of))
    users, counts = np.unique(test["user_id"].to_numpy(), return_counts=True)
    assert split.users.tolist() == sorted(users[counts >= 2].tolist())[:100]
    u0 = int(split.users[0])
    assert set(split.truth_of(0).tolist()) == set(test.filter(pc.equal(test["user_id"], u0))["post_id"]
                                                  .to_pylist())


def test_baselines_rank_only_allowed_catalog_posts(ds):
    split = temporal(ds)
    catalog = build_catalog(split, 48)
    for name in BASELINES:
        b = make_baseline(name)
        b.fit(split, catalog)
        lists = b.recommend(20)
        ids = lists.post_id
        valid = ids >= 0
        assert np.isin(ids[valid], catalog.post_id).all(), name
        cols = np.searchsorted(catalog.post_id, np.where(valid, ids, catalog.post_id[0]))
        rows = np.broadcast_to(np.arange(len(ids))[:, None], ids.shape)
        assert not np.asarray(catalog.exclude[rows[valid], cols[valid]]).any(), name
        assert all(len(set(r[r >= 0].tolist())) == int((r >= 0).sum()) for r in ids), name  # no repeats
        s = np.where(valid, lists.score, -1e300)
        assert np.all(np.diff(s, axis=1)[valid[:, 1:]] <= 0), name  # best first


class _Cells(HTMLParser):
    def __init__(self):
        super().__init__()
        self.cells: dict[tuple[str, str], dict] = {}
        self._cur = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "td" and "data-metric" in a:
            self._cur = (a["data-method"], a["data-metric"])
            self.cells[self._cur] = {**a, "text": ""}

    def handle_endtag(self, tag):
        if tag == "td":
            self._cur = None

    def handle_data(self, data):
        if self._cur:
            self.cells[self._cur]["text"] += data


def test_blind_oracles_lose_only_what_their_latent_decides(ds, tiny_world_dir):
    """Each blind oracle picks by the truth minus one latent: a latent that does not vary makes it the oracle,
    and the taste affinity the worlds do have costs it utility (never more than the oracle has)."""
    from dataclasses import replace

    from foryou.data.world.truth import GroundTruth
    from foryou.eval.oracle import page_utilities

    split = temporal(ds, max_users=30)
    truth = GroundTruth.load(tiny_world_dir)
    lists = {"some_page": np.full((len(split.users), 35), -1, np.int64)}  # 20 posts: the blind pages' length
    lists["some_page"][:, :20] = truth.posts.post_id[truth.eligible_rows(-1, split.as_of)[:20]]
    u = page_utilities(truth, split, lists)
    taste = u["oracle_blind_to_taste"]
    assert (taste["length"] == 20).all() and (taste["served"] <= taste["oracle"] + 1e-4).all()
    assert taste["served"].sum() < 0.99 * taste["oracle"].sum()
    flat = replace(truth.latent, taste=np.zeros_like(truth.latent.taste))
    u = page_utilities(GroundTruth(truth.params, flat, truth.user_ids, truth.posts, truth.weights), split, lists)
    np.testing.assert_allclose(u["oracle_blind_to_taste"]["served"], u["oracle_blind_to_taste"]["oracle"], rtol=1e-5)


@pytest.fixture(scope="module")
def eval_report(tiny_world_dir, tmp_path_factory, foryou_cli):
    """`foryou eval` on the tiny world once: (report directory, the finished process)."""
    tmp = tmp_path_factory.mktemp("eval")
    res = foryou_cli("eval", str(tiny_world_dir), "--report", str(tmp / "report"), "--users", "60", cwd=tmp)
    assert res.returncode == 0, res.stderr
    return tmp / "report", res


@pytest.mark.slow
def test_foryou_eval_end_to_end_json_and_html_agree(eval_report):
    out, res = eval_report
    assert "ndcg@10" in res.stdout and "report →" in res.stdout
    r = json.loads((out / "metrics.json").read_text())
    page = (out / "index.html").read_text()
    assert set(r["methods"]) == {"foryou", *BASELINES}
    assert r["users"] == 60 and "oracle" in r
    o = {name: m["ratio"]["mean"] for name, m in r["oracle"]["methods"].items()}
    # The decomposition: perfect order of our candidates ≥ the ranker's order of them; blind oracles ≤ 1.
    assert o["best_own_candidates"] >= o["ranked_own_candidates"] and "references: best_own_candidates" in res.stdout
    assert 0 < o["oracle_blind_to_taste"] <= 1 and 0 < o["oracle_blind_to_post_quality"] <= 1
    assert page.count("data:image/png;base64,") >= 7  # bars, oracle, sources, retrieval, 2 calibration, scores
    embedded = re.search(r'<script type="application/json" id="metrics">(.*?)</script>', page, re.S).group(1)
    assert json.loads(embedded.replace("<\\/", "</")) == r
    cells = _Cells()
    cells.feed(page)
    checked = 0
    for method, m in r["methods"].items():
        for metric, v in m["ranking"].items():
            c = cells.cells[(method, f"ranking.{metric}")]
            assert float(c["data-value"]) == v["mean"] and float(c["data-lo"]) == v["lo"]
            assert c["text"] == f"{fmt(v['mean'])} [{fmt(v['lo'])}, {fmt(v['hi'])}]"
            checked += 1
        for metric, v in m["engagement"].items():
            assert cells.cells[(method, f"engagement.{metric}")]["text"] == fmt(v)
        o = r["oracle"]["methods"][method]["ratio"]
        assert cells.cells[(method, "oracle.ratio")]["text"].startswith(fmt(o["mean"]))
    for source, s in r["sources"].items():
        assert cells.cells[(source, "sources.hits")]["text"] == fmt(s["hits"])
    stages = r["retrieval"]["stages"]
    assert {"trending", "merged", "after_filters", "page"} <= set(stages) and "retrieval recall@K" in res.stdout
    for stage, s in stages.items():
        c = cells.cells[(stage, "retrieval.recall")]
        assert float(c["data-value"]) == s["recall"]["mean"] or np.isnan(s["recall"]["mean"])
        assert cells.cells[(stage, "retrieval.candidates_per_user")]["text"] == fmt(s["candidates_per_user"])
    assert checked == len(r["methods"]) * len(r["methods"]["foryou"]["ranking"])
    # Segments and baseline tuning: in the JSON, the page and the terminal.
    assert {"all", "cold", "warm"} <= set(r["segments"]) and "by user segment" in res.stdout
    for seg, e in r["segments"].items():
        for method, m in e.get("methods", {}).items():
            c = cells.cells[(method, f"segments.{seg}.ranking.ndcg@10")]
            assert float(c["data-value"]) == m["ranking"]["ndcg@10"]["mean"]
    assert "baselines tuned on the validation split" in res.stdout
    tuned = 0
    for name, b in r["baselines"].items():
        for pt in b["tuning"]["validation"]:
            assert float(cells.cells[(params_text(pt["params"]), f"baselines.{name}.tuning.ndcg@10")]["data-value"]) \
                == pt["ndcg@10"]
            tuned += 1
        if b["tuning"]["validation"]:
            best = max(pt["ndcg@10"] for pt in b["tuning"]["validation"])
            assert b["tuning"]["validation_score"] == best and f"{name}: " in res.stdout
    assert tuned >= 20


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="no chromium here (.ci/run installs it)")
def test_the_report_shows_its_plots_in_a_browser(eval_report, tmp_path):
    """Headless Chromium renders index.html: the page's pixels in our plots' colour come from the embedded
    PNGs (the same page with its images removed has next to none)."""
    from PIL import Image

    out, _ = eval_report
    page = (out / "index.html").read_text()
    stripped = tmp_path / "no_images.html"
    stripped.write_text(re.sub(r'<img [^>]*src="data:image/png;base64,[^"]*"[^>]*>', "", page))
    assert stripped.read_text() != page

    def plot_pixels(html_path) -> int:
        shot = tmp_path / f"{html_path.stem}.png"
        subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                        "--window-size=1400,6000", f"--screenshot={shot}", html_path.resolve().as_uri()],
                       capture_output=True, timeout=120, check=True)
        rgb = np.asarray(Image.open(shot).convert("RGB")).astype(int)
        ours = np.array([0x1D, 0x9B, 0xF0])  # report.COLORS["foryou"]
        return int((np.abs(rgb - ours).sum(-1) < 30).sum())

    assert plot_pixels(out / "index.html") > 5_000
    assert plot_pixels(stripped) < 200


def test_eval_user_mistakes_are_one_line(tiny_world_dir, tmp_path, foryou_cli):
    # a value not among the allowed names is a usage error (exit 2); a missing dataset is exit 1
    for args, what, code in ((["--baselines", "lightfm"], "unknown baseline 'lightfm'", 2),
                             (["--protocol", "leave_one_out"], "unknown protocol", 2), ([], "no such directory", 1)):
        path = str(tmp_path / "nowhere") if not args else str(tiny_world_dir)
        r = foryou_cli("eval", path, "--report", str(tmp_path / "r"), *args, cwd=tmp_path)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == code and len(lines) == 1 and lines[0].startswith("error:"), r.stderr
        assert what in lines[0] and "Traceback" not in r.stderr
