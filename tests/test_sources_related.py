"""Related posts (cr-mixer's tweet-based source), the positives-only heavy ranker and per-dataset head weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foryou.config import EngagementWeights, ForYouConfig, apply_overrides
from foryou.data.importers.interactions import import_interactions
from foryou.graph import related as rel
from foryou.graph.related import RelatedPosts
from foryou.mixer import CandidateBatch
from foryou.timeline import columns as c
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.exploration import ExplorationScorer
from foryou.timeline.query import TimelineQuery
from foryou.timeline.windows import head_weights
from foryou.vocab import DAY, RANKER_HEADS

T0 = 1_600_000_000


def _events() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two taste groups: users 0–9 engage posts 0–4, users 10–19 posts 5–9; user 20 only post 0."""
    user, post = [], []
    for u in range(20):
        for p in (range(5) if u < 10 else range(5, 10)):
            user.append(u)
            post.append(p)
    user.append(20)
    post.append(0)
    return np.array(user), np.array(post), np.arange(len(user))


@pytest.mark.parametrize("ease_max", [0, 3_000])  # the cosine path, then EASE's closed form
def test_neighbours_come_from_the_same_taste_group(monkeypatch: pytest.MonkeyPatch, ease_max: int) -> None:
    monkeypatch.setattr(rel, "EASE_MAX_POSTS", ease_max)
    user, post, t = _events()
    r = RelatedPosts.build(user, post, t, n_users=21, n_posts=12, k=3)
    for p in range(10):
        nb = r.neighbours[r.indptr[p]:r.indptr[p + 1]]
        assert 0 < len(nb) <= 3 and p not in nb
        assert all((q < 5) == (p < 5) for q in nb)  # never across groups: nobody engaged both
        assert (np.diff(r.weights[r.indptr[p]:r.indptr[p + 1]]) <= 0).all()  # best first
    assert r.indptr[11] == r.indptr[10] == r.indptr[12]  # posts 10, 11: nobody engaged them
    rows, score = r.score(r.engaged_by(20))  # user 20 engaged post 0 only: its group comes back
    assert set(rows.tolist()) <= {1, 2, 3, 4} and len(rows) and (score > 0).all()


def test_score_ignores_posts_created_after_the_build() -> None:
    user, post, t = _events()
    r = RelatedPosts.build(user, post, t, n_users=21, n_posts=12)
    rows, score = r.score(np.array([0, 12, 40]))  # rows 12 and 40 were appended live
    alone_rows, alone = r.score(np.array([0]))
    assert len(rows) and rows.tolist() == alone_rows.tolist() and np.allclose(score, alone)
    none, _ = RelatedPosts.empty(3, 5).score(np.array([0, 1]))
    assert len(none) == 0


def test_engaged_by_is_most_recent_first_and_capped() -> None:
    user = np.zeros(6, np.int64)
    post = np.array([3, 1, 4, 1, 5, 9])
    t = np.array([10, 20, 30, 40, 50, 60])
    r = RelatedPosts.build(user, post, t, n_users=2, n_posts=10, per_user=3)
    assert r.engaged_by(0).tolist() == [9, 5, 1]  # post 1's latest event (40) counts, the cap keeps 3
    assert len(r.engaged_by(1)) == 0 and len(r.engaged_by(7)) == 0


def test_head_weights_for_positives_only_data() -> None:
    x = EngagementWeights()
    assert head_weights(x, ("click", "like"), has_impressions=True) == x  # a logged feed keeps X's weights
    w = head_weights(x, ("click", "like", "not_interested"), has_impressions=False).as_dict()
    assert w["click"] == w["like"] == 1.0 and w["negative_feedback"] == -1.0
    assert all(w[h] == 0.0 for h in RANKER_HEADS if h not in ("click", "like", "negative_feedback"))
    assert head_weights(x, ("like",), False).as_dict()["negative_feedback"] == 0.0
    chosen = apply_overrides(ForYouConfig(), {"weights": {"like": 2.0}}).weights
    assert head_weights(chosen, ("like",), has_impressions=False) == chosen  # what the config sets is kept


@pytest.fixture(scope="module")
def two_taste_catalog(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[int, int], dict[int, int]]:
    """A positives-only catalog: even users like items 0–59, odd users items 60–119, over a year.
    Returns the dataset and the group (0 or 1) of each user id and each post id."""
    rng = np.random.default_rng(1)
    lines = ["user,item,time"]
    for u in range(120):
        group = np.arange(60) + (60 if u % 2 else 0)
        for i in rng.choice(group, 15, replace=False):
            lines.append(f"u{u},i{i},{T0 + int(rng.integers(0, 365 * DAY))}")
    root = tmp_path_factory.mktemp("tastes")
    (root / "events.csv").write_text("\n".join(lines) + "\n")
    imp = import_interactions(root / "events.csv", root / "ds", user="user", item="item", time="time")
    users = imp.user_ids.to_pydict()
    items = imp.item_ids.to_pydict()
    user_group = {int(i): int(e[1:]) % 2 for e, i in zip(users["external_id"], users["user_id"], strict=True)}
    post_group = {int(i): int(int(e[1:]) >= 60) for e, i in zip(items["external_id"], items["post_id"], strict=True)}
    return root / "ds", user_group, post_group


Tastes = tuple[Path, dict[int, int], dict[int, int]]


def test_related_source_serves_the_viewers_taste(two_taste_catalog: Tastes) -> None:
    path, user_group, post_group = two_taste_catalog
    engine = RecommendationEngine.open(path, cache=False)
    try:
        assert not engine.state.index.has_impressions
        viewers = np.array(sorted(user_group)[:20], np.int64)
        out = engine.funnel(viewers, until="post_filters")
        b, seg = out.batch, out.segments.ids
        src = np.asarray(b[c.SOURCE]).astype(str)
        related = src == "related_posts"
        assert related.any() and (np.asarray(b[c.RELATED])[related] > 0).all()
        same = np.array([post_group[int(p)] == user_group[int(viewers[s])]
                         for p, s in zip(np.asarray(b[c.POST_ID])[related], seg[related], strict=True)])
        assert same.all()  # co-engagement never crosses the two tastes
        # the related score is hydrated for every candidate, whichever source found it, and ranks the page
        page = engine.recommend(int(viewers[0]))
        assert len(page.items) == engine.config.timeline.mixing.page_size
        top = [post_group[int(item.post_id)] for item in page.items[:10]]
        assert sum(g == user_group[int(viewers[0])] for g in top) >= 8
        assert engine.state.weights().as_dict()["like"] == 1.0  # positives-only: equal head weights
    finally:
        engine.close()


def test_exploration_waits_for_an_impression_log(two_taste_catalog: Tastes) -> None:
    """Without impressions every Beta posterior is the same prior: a Thompson draw would only be noise."""
    path, user_group, _ = two_taste_catalog
    engine = RecommendationEngine.open(path, cache=False)
    try:
        assert engine.config.timeline.exploration.strategy == "thompson"
        scorer = ExplorationScorer(engine.state)
        user = sorted(user_group)[0]
        query = TimelineQuery(user_id=user, user_row=engine.user_row(user), now=engine.now, n=10)
        rows = np.arange(40, dtype=np.int64)
        batch = CandidateBatch({c.POST_ROW: rows, c.SCORE: np.ones(40, np.float32)})
        assert (scorer.factor(query, batch) == 1.0).all()
        engine.record_interaction(user, int(engine.state.index.post_id[3]), "impression")
        assert (scorer.factor(query, batch) != 1.0).any()  # once something was shown, it explores again
    finally:
        engine.close()


def test_engaged_authors_source_serves_accounts_the_viewer_reads_without_following(tmp_path: Path) -> None:
    """No follow graph: u0 engaged three posts of a1, whose new post then appears through `engaged_authors`
    with the affinity hydrated; a2's new post (popular with others, never read by u0) comes from elsewhere."""
    items = ["item,created,author"] + [f"{a}p{i},{T0 + i * 3600},{a}" for a in ("a1", "a2") for i in range(5)]
    end = T0 + 3 * DAY
    items += [f"a1new,{end - 3600},a1", f"a2new,{end - 3600},a2"]
    events = ["user,item,time"] + [f"u0,a1p{i},{T0 + DAY + i * 60}" for i in range(3)]
    events += [f"u{u},a2p{i},{T0 + DAY + u * 60 + i}" for u in range(1, 9) for i in range(5)]
    events += [f"u{u},a2new,{end - 1800 + u}" for u in range(1, 6)]
    (tmp_path / "items.csv").write_text("\n".join(items) + "\n")
    (tmp_path / "events.csv").write_text("\n".join(events) + "\n")
    import_interactions(tmp_path / "events.csv", tmp_path / "ds", user="user", item="item", time="time",
                        items=tmp_path / "items.csv")
    engine = RecommendationEngine.open(tmp_path / "ds", cache=False, state=tmp_path / "state")
    try:
        out = engine.funnel(np.array([engine.user_id_of("u0")]), until="post_filters")
        b = out.batch
        found = {int(p): (str(s), float(a)) for p, s, a in zip(b[c.POST_ROW], b[c.SOURCE], b[c.AUTHOR_AFFINITY],
                                                              strict=True)}
        a1new, a2new = engine.post_row("a1new"), engine.post_row("a2new")
        assert found[a1new] == ("engaged_authors", 3.0), found  # u0's three engagements with a1
        assert a2new not in found or found[a2new][0] != "engaged_authors"
    finally:
        engine.close()
