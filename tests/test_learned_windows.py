"""`foryou train` learns the trending window of data without impressions on the validation window, and the
engine serves it unless the config sets the window."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from foryou.config import ForYouConfig, parse_overrides
from foryou.data.importers.interactions import import_interactions
from foryou.data.state import models_dir, state_dir
from foryou.eval.promotion import tune_windows
from foryou.registry import ModelRegistry
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.windows import LEARNED_WINDOWS, resolve_for, unresolved, windows_status
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


def _trending(engine: RecommendationEngine) -> float:
    return float(engine.config.timeline.sources.trending_count_hours)


def test_a_longer_window_that_wins_on_validation_is_learned_and_served(burst_catalog: Path) -> None:
    derived = resolve_for(burst_catalog, learned=False).timeline.sources.trending_count_hours
    assert derived == 24  # the burst makes the derived window short
    verdict = tune_windows(burst_catalog, ForYouConfig(), None)
    assert verdict is not None and verdict.model == LEARNED_WINDOWS and verdict.promoted, verdict
    entry = ModelRegistry(models_dir(state_dir(burst_catalog))).promoted(LEARNED_WINDOWS)
    assert entry is not None and entry.version == verdict.version
    chosen = float(entry.config["trending_count_hours"])
    assert chosen >= 720 and set(entry.metrics["validation_ndcg"]) >= {"24", "168", "720"}
    assert entry.metrics["validation_ndcg"]["24"] < entry.metrics["validation_ndcg"][f"{chosen:g}"]
    assert verdict.candidate_ndcg is not None and verdict.served_ndcg is not None
    assert verdict.candidate_ndcg > verdict.served_ndcg
    assert "derived 24 h" in verdict.line() and verdict.line().endswith(")") and "→ promoted" in verdict.line()
    assert resolve_for(burst_catalog).timeline.sources.trending_count_hours == chosen  # what `foryou eval` resolves
    engine = RecommendationEngine.open(burst_catalog, cache=False)
    try:
        assert _trending(engine) == chosen
        assert windows_status(engine.state_dir) == f"v{entry.version} (promoted): trending {chosen:g} h"
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
    assert tune_windows(burst_catalog, config, None) is None  # a window the config sets is not learned


def test_the_derived_window_stays_unless_beaten_by_min_gain(burst_catalog: Path, tmp_path: Path) -> None:
    verdict = tune_windows(burst_catalog, ForYouConfig(), tmp_path / "state", min_gain=1.0)
    assert verdict is not None and not verdict.promoted and verdict.candidate_ndcg == verdict.served_ndcg
    assert ModelRegistry(models_dir(tmp_path / "state")).promoted(LEARNED_WINDOWS) is None
    derived = resolve_for(burst_catalog, state=tmp_path / "state").timeline.sources.trending_count_hours
    assert derived == resolve_for(burst_catalog, learned=False).timeline.sources.trending_count_hours
    assert windows_status(tmp_path / "state").startswith("derived")
    assert tune_windows(burst_catalog, ForYouConfig(), tmp_path / "other", force=False) is not None
    assert ModelRegistry(models_dir(tmp_path / "other")).promoted(LEARNED_WINDOWS) is None  # --no-promote


def test_data_with_impressions_learns_nothing(tiny_world_dir: Path, tmp_path: Path) -> None:
    assert tune_windows(tiny_world_dir, ForYouConfig(), tmp_path) is None
