"""`foryou train` learns the heuristic of data without impressions on the validation window — the trending
window and the positives-only weights — and the engine serves it unless the config sets the field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from foryou.config import ForYouConfig, parse_overrides
from foryou.data.importers.interactions import import_interactions
from foryou.data.state import models_dir, state_dir
from foryou.eval.heuristic import tune_heuristic
from foryou.registry import ModelRegistry
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.windows import LEARNED_HEURISTIC, WEIGHTS, heuristic_status, resolve_for, unresolved
from foryou.vocab import DAY, HOUR

T0 = 1_600_000_000


def _write(root: Path, lines: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "events.csv").write_text("\n".join(["user,item,time", *lines]) + "\n")
    import_interactions(root / "events.csv", root / "ds", user="user", item="item", time="time")
    return root / "ds"


@pytest.fixture(scope="module")
def burst_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Positives only, about a year long: ten evergreen items everybody keeps engaging with (validation too),
    and a one-off burst on forty other items in the two hours before the split, nobody's taste afterwards.
    A short trending window counts the burst; a month of events counts the evergreen items. The counts put
    the split (the 70 % engagement quantile) exactly at the first event after the burst."""
    rng = np.random.default_rng(1)
    cut = T0 + 300 * DAY
    lines, taken = [], []
    for u in range(200):  # 800 events before the burst
        mine = rng.choice(10, 3, replace=False)
        taken.append(set(mine.tolist()))
        lines += [f"u{u},e{i},{T0 + int(rng.integers(0, 300 * DAY - 3 * HOUR))}" for i in mine]
        lines.append(f"u{u},n{u},{T0 + int(rng.integers(0, 300 * DAY - 3 * HOUR))}")  # the user's own niche item
    for b in range(40):  # 160 burst events
        lines += [f"b{b},x{i},{cut - int(rng.integers(60, 2 * HOUR))}" for i in rng.choice(40, 4, replace=False)]
    for k in range(412):  # after the split: evergreen items the users had not engaged with
        u = int(rng.integers(0, 200))
        item = int(rng.choice(sorted(set(range(10)) - taken[u])))
        lines.append(f"u{u},e{item},{cut + (0 if k == 0 else int(rng.integers(1, 65 * DAY)))}")
    return _write(tmp_path_factory.mktemp("burst"), lines)


# the weights as configured (their defaults): these tests are about the window, and the ascent would cost seconds
WINDOW_ONLY = ForYouConfig.model_validate(parse_overrides(
    [f"timeline.heuristics.heavy_ranker.positives_only.{k}={v}" for k, v in
     ForYouConfig().timeline.heuristics.heavy_ranker.positives_only.model_dump().items()]))


def _trending(engine: RecommendationEngine) -> float:
    return float(engine.config.timeline.sources.trending_count_hours)


def test_a_longer_window_that_wins_on_validation_is_learned_and_served(burst_catalog: Path) -> None:
    derived = resolve_for(burst_catalog, learned=False).timeline.sources.trending_count_hours
    assert derived == 24  # the burst makes the derived window short
    verdict = tune_heuristic(burst_catalog, WINDOW_ONLY, None)
    assert verdict is not None and verdict.model == LEARNED_HEURISTIC and verdict.promoted, verdict
    entry = ModelRegistry(models_dir(state_dir(burst_catalog))).promoted(LEARNED_HEURISTIC)
    assert entry is not None and entry.version == verdict.version
    chosen = float(entry.config["trending_count_hours"])
    points = entry.metrics["validation_ndcg"]  # every point measured: the window grid under the default weights first
    assert chosen >= 720 and set(points) >= {"24 h", "168 h", "720 h"}
    assert points["24 h"] < points[f"{chosen:g} h"]
    assert verdict.candidate_ndcg is not None and verdict.served_ndcg is not None
    assert verdict.candidate_ndcg > verdict.served_ndcg
    assert "derived 24 h" in verdict.line() and verdict.line().endswith(")") and "→ promoted" in verdict.line()
    assert resolve_for(burst_catalog).timeline.sources.trending_count_hours == chosen  # what `foryou eval` resolves
    engine = RecommendationEngine.open(burst_catalog, cache=False)
    try:
        assert _trending(engine) == chosen
        assert heuristic_status(engine.state_dir).startswith(f"v{entry.version} (promoted): trending {chosen:g} h")
        again = unresolved(engine.config, burst_catalog)  # the API relearns what the engine only resolved
        assert "trending_count_hours" not in again.timeline.sources.model_fields_set
    finally:
        engine.close()
    config = ForYouConfig.model_validate(parse_overrides(["timeline.sources.trending_count_hours=24"]))
    engine = RecommendationEngine.open(burst_catalog, config, cache=False)  # --set always wins
    try:
        assert _trending(engine) == 24
        assert "trending_count_hours" in unresolved(engine.config, burst_catalog).timeline.sources.model_fields_set
    finally:
        engine.close()
    assert resolve_for(burst_catalog, config).timeline.sources.trending_count_hours == 24
    weights = [f"timeline.heuristics.heavy_ranker.positives_only.{k}=1" for k in WEIGHTS]
    window = ["timeline.sources.trending_count_hours=24", "timeline.sources.trending_counts=positive"]
    everything = ForYouConfig.model_validate(parse_overrides([*window, *weights]))
    assert tune_heuristic(burst_catalog, everything, None) is None  # nothing left to learn: the config sets it all


def test_the_derived_window_stays_unless_beaten_by_min_gain(burst_catalog: Path, tmp_path: Path) -> None:
    verdict = tune_heuristic(burst_catalog, WINDOW_ONLY, tmp_path / "state", min_gain=1.0)
    assert verdict is not None and not verdict.promoted and verdict.candidate_ndcg == verdict.served_ndcg
    assert ModelRegistry(models_dir(tmp_path / "state")).promoted(LEARNED_HEURISTIC) is None
    derived = resolve_for(burst_catalog, state=tmp_path / "state").timeline.sources.trending_count_hours
    assert derived == resolve_for(burst_catalog, learned=False).timeline.sources.trending_count_hours
    assert heuristic_status(tmp_path / "state").startswith("derived")
    assert tune_heuristic(burst_catalog, WINDOW_ONLY, tmp_path / "other", force=False) is not None
    assert ModelRegistry(models_dir(tmp_path / "other")).promoted(LEARNED_HEURISTIC) is None  # --no-promote


def test_data_with_impressions_learns_nothing(tiny_world_dir: Path, tmp_path: Path) -> None:
    assert tune_heuristic(tiny_world_dir, ForYouConfig(), tmp_path) is None


@pytest.fixture(scope="module")
def taste_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Positives only: twenty taste groups of eight items, and ten hits everybody engaged with before the split.
    Afterwards users engage only the rest of their own group's items: co-engagement predicts them, popularity
    (the hits they have not engaged yet) does not."""
    rng = np.random.default_rng(2)
    cut = T0 + 300 * DAY
    lines, later = [], []
    for u in range(300):
        group = [f"g{u % 20}i{i}" for i in rng.permutation(8)]
        hits = [f"hit{i}" for i in rng.choice(10, 3, replace=False)]
        lines += [f"u{u},{item},{T0 + int(rng.integers(0, 300 * DAY - HOUR))}" for item in group[:4] + hits]
        later += [f"u{u},{item}" for item in group[4:7]]
    lines += [f"{row},{cut + (0 if k == 0 else int(rng.integers(1, 60 * DAY)))}" for k, row in enumerate(later)]
    return _write(tmp_path_factory.mktemp("taste"), lines)


def test_the_positives_only_weights_are_learned_where_history_predicts(taste_catalog: Path, tmp_path: Path) -> None:
    default = resolve_for(taste_catalog, learned=False).timeline.heuristics.heavy_ranker.positives_only
    verdict = tune_heuristic(taste_catalog, ForYouConfig(), tmp_path)
    assert verdict is not None and verdict.promoted and "weights" in verdict.line(), verdict
    assert verdict.candidate_ndcg is not None and verdict.served_ndcg is not None
    assert verdict.candidate_ndcg > verdict.served_ndcg
    learned = ModelRegistry(models_dir(tmp_path)).promoted(LEARNED_HEURISTIC).config["positives_only"]
    # co-engagement now outweighs popularity by more than the defaults say
    assert learned["related"] / max(learned["trending"], 1e-9) > default.related / default.trending, learned
    served = resolve_for(taste_catalog, state=tmp_path).timeline.heuristics.heavy_ranker.positives_only
    assert served.model_dump() == learned  # what every engine of the dataset serves
    pin = "timeline.heuristics.heavy_ranker.positives_only.related=0.5"
    pinned = ForYouConfig.model_validate(parse_overrides([pin]))
    mine = resolve_for(taste_catalog, pinned, tmp_path).timeline.heuristics.heavy_ranker.positives_only
    assert mine.related == 0.5 and mine.trending == learned["trending"]  # --set wins, field by field
    engine = RecommendationEngine.open(taste_catalog, cache=False, state=tmp_path)
    try:
        assert engine.model_versions()["heuristic"].startswith(f"v{verdict.version} (promoted)")
        again = unresolved(engine.config, taste_catalog, tmp_path)  # the API relearns what was only resolved
        assert not again.timeline.heuristics.heavy_ranker.positives_only.model_fields_set
    finally:
        engine.close()


def test_trending_can_count_every_engagement_of_rated_data(tmp_path: Path) -> None:
    """Ratings: ≥ 4 a like, 3 only engaged (a click), ≤ 2 negative feedback. `trending_counts = engaged` counts
    the 3s too and never the negatives; all-time popularity counts positives."""
    rows = ["user,item,time,rating"] + [f"u{u},m1,{T0 + u * HOUR},{r}" for u, r in enumerate([5, 3, 3, 1, 1])] \
        + [f"u{u},m2,{T0 + (10 + u) * HOUR},4" for u in range(2)] + [f"u9,m3,{T0 + 20 * DAY},5"]
    (tmp_path / "ratings.csv").write_text("\n".join(rows) + "\n")
    import_interactions(tmp_path / "ratings.csv", tmp_path / "ds", user="user", item="item", time="time",
                        value="rating", positive_min=4, negative_max=2)
    engine = RecommendationEngine.open(tmp_path / "ds", cache=False, state=tmp_path / "state")
    try:
        idx = engine.state.index
        m1, m2 = (engine.post_row(m) for m in ("m1", "m2"))
        start = T0 - HOUR
        assert idx.positives_since(start)[[m1, m2]].tolist() == [1, 2]
        assert idx.positives_since(start, "engaged")[[m1, m2]].tolist() == [3, 2]  # 5, 3, 3 (never the 1s)
        assert idx.positives_total(np.array([m1, m2, len(idx.post_id) + 5])).tolist() == [1, 2, 0]
    finally:
        engine.close()


def test_nothing_is_learned_from_too_little_validation_signal(taste_catalog: Path, tmp_path: Path) -> None:
    verdict = tune_heuristic(taste_catalog, ForYouConfig(), tmp_path, max_users=12)  # 12 users: < 20 can hit
    assert verdict is not None and not verdict.promoted and "too little signal" in verdict.line(), verdict
    assert ModelRegistry(models_dir(tmp_path)).promoted(LEARNED_HEURISTIC) is None


def test_eval_learns_the_heuristic_once_where_train_did_not(taste_catalog: Path, tmp_path: Path, foryou_cli) -> None:
    """`foryou eval` tunes the baselines on validation, and our heuristic there too — once."""
    state = tmp_path / "state"
    args = ("eval", str(taste_catalog), "--report", str(tmp_path / "r"), "--baselines", "none",
            "--state-dir", str(state))
    first = foryou_cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "heuristic v1: validation page NDCG@10" in first.stdout and "→ promoted" in first.stdout, first.stdout
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["learned_heuristic"]["promoted"] and metrics["models"]["heuristic"].startswith("v1 (promoted)")
    again = foryou_cli(*args, cwd=tmp_path)
    assert again.returncode == 0 and "heuristic v" not in again.stdout, again.stdout  # learned already
    assert ModelRegistry(models_dir(state)).promoted(LEARNED_HEURISTIC).version == 1
