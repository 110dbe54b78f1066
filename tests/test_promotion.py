"""`foryou train`'s promotion gate (foryou.eval.promotion): a candidate is served only if its pages beat
what is served now on the validation window, `--promote` / `--no-promote` override, and every comparison
is recorded in the version's registry entry."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from foryou.config import ForYouConfig, HeavyRankerConfig, TrainingConfig
from foryou.data.dataset import Dataset
from foryou.data.state import models_dir, state_dir
from foryou.eval.promotion import Verdict, gate, validation_split
from foryou.features import FeatureStore
from foryou.registry import ModelRegistry
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.loading import load_models
from foryou.training.pipeline import train_all

FAST = ForYouConfig(training=TrainingConfig(heavy_ranker=HeavyRankerConfig(epochs=2, batch_size=2048)))


@pytest.fixture(scope="module")
def trained(tiny_world_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelRegistry]:
    """A tiny world with a trained heavy ranker (v1, unpromoted) and its inverted twin (v2: every head's
    calibration slope negated, so it ranks the candidates upside down — a model that must lose)."""
    path = tmp_path_factory.mktemp("gate") / "w"
    shutil.copytree(tiny_world_dir, path, ignore=shutil.ignore_patterns("models"))
    train_all(path, FAST, only="heavy_ranker", promote=False)
    reg = ModelRegistry(models_dir(state_dir(path)))
    tensors, mv = reg.load("heavy_ranker", 1)
    tensors["platt_a"] = -tensors["platt_a"]
    reg.register("heavy_ranker", tensors, config=mv.config, metrics={}, dataset_fingerprint=mv.dataset_fingerprint,
                 schema=mv.schema, extra=mv.extra)
    return path, reg


def _reset(reg: ModelRegistry) -> None:
    (reg.root / "heavy_ranker" / "promoted.json").unlink(missing_ok=True)


def test_the_validation_split_is_point_in_time(tiny_world_dir: Path):
    ds = Dataset.load(tiny_world_dir)
    split = validation_split(ds, max_users=50, seed=3)
    s = ds.manifest.split
    assert (split.as_of, split.end) == (s.train_end, s.valid_end)
    assert 0 < len(split.users) <= 50 and np.all(np.diff(split.users) > 0)
    created = dict(zip(ds.posts["post_id"].to_pylist(), ds.posts["created_at"].to_pylist(), strict=True))
    assert all(created[p] < split.as_of for p in split.truth_post.tolist())  # posts a page then could hold
    assert split.n_relevant.min() >= 1
    again = validation_split(ds, max_users=50, seed=3)
    np.testing.assert_array_equal(split.users, again.users)


def test_a_model_that_loses_on_validation_is_not_promoted_and_the_registry_says_why(trained):
    path, reg = trained
    _reset(reg)
    [verdict] = gate(path, {"heavy_ranker": 2})
    assert not verdict.promoted and reg.promoted("heavy_ranker") is None
    assert verdict.candidate_ndcg is not None and verdict.served_ndcg is not None
    assert verdict.candidate_ndcg < verdict.served_ndcg and verdict.served == "heuristic"
    record = reg.show("heavy_ranker", 2).metrics["promotion"]
    assert record["promoted"] is False and record["reason"] == "no better than served"
    assert record["candidate_ndcg"] == verdict.candidate_ndcg and record["served_ndcg"] == verdict.served_ndcg
    assert record["users"] == len(validation_split(Dataset.load(path)).users) > 0
    assert record["as_of"] == Dataset.load(path).manifest.split.train_end
    assert "not promoted" in verdict.line() and "heuristic" in verdict.line()
    # the engine keeps serving the heuristic
    engine = RecommendationEngine.open(path, cache=False)
    assert "heuristic" in engine.model_versions()["heavy_ranker"]
    engine.close()


def _scripted(monkeypatch: pytest.MonkeyPatch, by_version: dict[str, float], seen: list[str]) -> None:
    """Every user's page NDCG by what the engine's heavy-ranker slot serves (its status line): the decisions below
    do not hang on how well a 2-epoch model ranks a tiny world, and the status proves the candidate was swapped in."""
    def fake(engine: RecommendationEngine, split, k: int = 10, overrides=None) -> np.ndarray:
        slot = engine.model_status.get("heavy_ranker", "")
        seen.append(slot.split(" (")[0] if slot.startswith("v") else "heuristic")
        return np.full(len(split.users), by_version[seen[-1]])

    monkeypatch.setattr("foryou.eval.promotion.page_ndcgs", fake)


def test_promote_forces_and_no_promote_never_promotes(trained, monkeypatch):
    path, reg = trained
    _reset(reg)
    seen: list[str] = []
    _scripted(monkeypatch, {"heuristic": 0.2, "v1": 0.3, "v2": 0.1}, seen)
    [forced] = gate(path, {"heavy_ranker": 2}, force=True)
    assert seen == ["heuristic", "v2"]
    assert forced.promoted and (forced.candidate_ndcg, forced.served_ndcg) == (0.1, 0.2)  # a loser, forced
    assert reg.promoted("heavy_ranker").version == 2
    assert reg.show("heavy_ranker", 2).metrics["promotion"]["reason"] == "forced by --promote"
    [kept] = gate(path, {"heavy_ranker": 1}, force=False)  # v1 beats the served v2, but --no-promote
    assert not kept.promoted and kept.served == "v2 (promoted)"
    assert (kept.candidate_ndcg, kept.served_ndcg) == (0.3, 0.1)
    assert reg.promoted("heavy_ranker").version == 2
    assert reg.show("heavy_ranker", 1).metrics["promotion"]["reason"] == "--no-promote"


def test_a_model_that_wins_is_promoted_and_a_tie_is_not(trained, monkeypatch):
    path, reg = trained
    _reset(reg)
    seen: list[str] = []
    _scripted(monkeypatch, {"heuristic": 0.2, "v1": 0.2, "v2": 0.25}, seen)
    [tie] = gate(path, {"heavy_ranker": 1})
    assert not tie.promoted and reg.promoted("heavy_ranker") is None  # equal pages: the heuristic stays
    [verdict] = gate(path, {"heavy_ranker": 2}, min_gain=0.1)
    assert not verdict.promoted and "min_gain" in verdict.reason  # +0.05 is not enough
    [verdict] = gate(path, {"heavy_ranker": 2})
    assert verdict.promoted and reg.promoted("heavy_ranker").version == 2
    record = reg.show("heavy_ranker", 2).metrics["promotion"]
    assert record["promoted"] is True and record["metric"] == "validation page NDCG@10"
    assert record["served"] == "heuristic" and record["candidate_ndcg"] == 0.25
    line = verdict.line()
    assert line == (f"heavy_ranker v2: validation page NDCG@10 0.2500 vs served 0.2000 (heuristic; +0.0500, "
                    f"{verdict.users} users) → promoted")
    engine = RecommendationEngine.open(path, cache=False)
    assert engine.model_versions()["heavy_ranker"].startswith("v2 (promoted)")
    engine.close()


def test_load_models_loads_a_named_version_as_a_candidate(trained):
    path, reg = trained
    _reset(reg)
    reg.promote("heavy_ranker", 1)
    ds = Dataset.load(path)
    from foryou.data.split import history

    store = FeatureStore(history(ds, ds.manifest.split.train_end))
    models, status = load_models(reg.root, store, versions={"heavy_ranker": 2})
    assert status["heavy_ranker"].startswith("v2 (candidate)") and models["heavy_ranker"].version == "heavy_ranker v2"
    models, status = load_models(reg.root, store)
    assert status["heavy_ranker"].startswith("v1 (promoted)")


def test_no_candidates_and_unservable_candidates(trained):
    path, _ = trained
    assert gate(path, {}) == []
    line = Verdict("heavy_ranker", 3, None, 0.1, "heuristic", 10, 0, False, "cannot be served: corrupt").line()
    assert line == "heavy_ranker v3: cannot be served: corrupt → not promoted"


def test_config_carries_the_gate_settings():
    cfg = ForYouConfig.model_validate({"training": {"promotion": {"min_gain": 0.01, "max_users": 100}}})
    assert cfg.training.promotion.min_gain == 0.01 and cfg.training.promotion.max_users == 100
    assert ForYouConfig().training.promotion.min_gain == 0.0


def test_a_win_from_a_few_lucky_hits_is_not_promoted(trained, monkeypatch):
    """One user in the sample finds something on the candidate's pages, nobody on the served ones: a "gain",
    but no evidence (the minirecsys data's RealGraph was promoted on one hit in 500 users)."""
    path, reg = trained
    _reset(reg)

    def lucky(engine: RecommendationEngine, split, k: int = 10, overrides=None) -> np.ndarray:
        out = np.zeros(len(split.users))
        out[0] = 0.5 if engine.model_status.get("heavy_ranker", "").startswith("v") else 0.0
        return out

    monkeypatch.setattr("foryou.eval.promotion.page_ndcgs", lucky)
    [verdict] = gate(path, {"heavy_ranker": 2})
    assert not verdict.promoted and "too little signal: 1 validation users" in verdict.reason, verdict
    assert reg.promoted("heavy_ranker") is None
