"""Damaged models say so wherever a model's status is shown — the engine's `model_versions()` (`foryou
timeline`, /readyz, the page's `models`) and `foryou eval` — never "not trained"; the page is served by the
fallback and the reason is logged. The light rankers are named per side, so promoting one is visible."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import torch

from foryou.config import ForYouConfig
from foryou.data.state import models_dir, state_dir
from foryou.features import FEATURE_SCHEMA
from foryou.models.logistic import LogisticRegression
from foryou.registry import ModelRegistry
from foryou.timeline.engine import RecommendationEngine
from foryou.training.light_models import LIGHT_FEATURES

FALLBACK = ", serving the fallback (heuristic)"


def _world(tiny_world_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "w"
    shutil.copytree(tiny_world_dir, out, ignore=shutil.ignore_patterns("models"))
    return out


def _register(reg: ModelRegistry, name: str, schema: str, tensors: dict | None = None, config: dict | None = None):
    return reg.register(name, tensors or {"w": torch.ones(3)}, config=config or {}, metrics={},
                        dataset_fingerprint="test", schema=schema, promote=True)


def _light_ranker(reg: ModelRegistry, side: str, seed: int = 0):
    torch.manual_seed(seed)
    module = LogisticRegression(len(LIGHT_FEATURES))
    torch.nn.init.normal_(module.linear.weight)
    return _register(reg, f"light_ranker_{side}", FEATURE_SCHEMA, dict(module.state_dict()),
                     {"features": list(LIGHT_FEATURES)})


def test_damaged_models_say_corrupt_and_the_fallback_serves(tiny_world_dir, tmp_path, caplog):
    path = _world(tiny_world_dir, tmp_path)
    reg = ModelRegistry(models_dir(state_dir(path)))
    heavy = _register(reg, "heavy_ranker", FEATURE_SCHEMA)
    (heavy.path / "weights.safetensors").write_bytes(b"\x00not safetensors" * 8)  # garbage weights
    two_tower = _register(reg, "two_tower", "two_tower-serving-vectors-1")
    weights = two_tower.path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])  # truncated weights
    _register(reg, "realgraph", "realgraph-features-1")
    (models_dir(state_dir(path)) / "realgraph" / "promoted.json").write_text('{"version": 1, "hist')  # truncated JSON
    light_in = _light_ranker(reg, "in_network")
    (light_in.path / "weights.safetensors").write_bytes(b"")
    _light_ranker(reg, "out_of_network")

    with caplog.at_level(logging.WARNING, logger="foryou.timeline"):
        engine = RecommendationEngine.open(path, cache=False)
    versions = engine.model_versions()
    corrupt = "weights file is corrupt (checksum mismatch)"
    assert versions["heavy_ranker"] == f"corrupt: heavy_ranker v1: {corrupt}{FALLBACK}"
    assert versions["embedding_ann"] == ("corrupt: two_tower v1: weights file is corrupt (checksum mismatch), "
                                         "serving the fallback (embedding ANN skipped)")
    assert versions["realgraph"].startswith("corrupt: realgraph: promotion state ")
    assert versions["realgraph"].endswith("serving the fallback (decayed-count heuristic)")
    assert versions["light_ranker"] == ("in-network corrupt: light_ranker_in_network v1: weights file is corrupt "
                                        f"(checksum mismatch){FALLBACK}; out-of-network v1 (promoted)")
    assert not any("not trained" in v or "no trained model" in v for v in versions.values())
    # served by the fallbacks, and the same statuses on every page
    assert set(engine.state.models) == {"light_ranker_out_of_network"}
    page = engine.recommend(int(engine.state.index.user_ids[0]))
    assert page.items and page.models == versions
    # each reason is in the log, as a warning
    logged = {r.model: r.status for r in caplog.records if r.getMessage().startswith("model not served")}
    assert set(logged) == {"heavy_ranker", "two_tower", "realgraph", "light_ranker_in_network"}
    assert logged["heavy_ranker"] == versions["heavy_ranker"]
    engine.close()


def test_promoting_one_light_ranker_shows_and_eval_reports_what_ran(tiny_world_dir, tmp_path):
    from foryou.eval.evaluator import evaluate

    path = _world(tiny_world_dir, tmp_path)
    _light_ranker(ModelRegistry(models_dir(state_dir(path))), "out_of_network")
    engine = RecommendationEngine.open(path, cache=False)
    assert engine.model_versions()["light_ranker"] == "in-network missing: heuristic fallback; " \
                                                      "out-of-network v1 (promoted)"
    # loaded is not the same as used: below light_ranker_keep candidates per source nothing is cut
    assert engine.light_ranker_status({"out_of_network": 0}).endswith(
        "out-of-network v1 (promoted), never ran (no out-of-network source returned more than "
        "light_ranker_keep = 500 candidates, so nothing was cut)")
    engine.close()

    # a cut that binds: the eval's models say the trained out-of-network light ranker ordered the candidates
    config = ForYouConfig.model_validate({"timeline": {"ranking": {"light_ranker_keep": 5}}})
    result = evaluate(path, baselines=(), config=config, max_users=12, oracle=False, reps=20)
    light = result["models"]["light_ranker"]
    assert light.startswith("in-network missing: heuristic fallback; out-of-network v1 (promoted), ordered ")
    assert int(light.rsplit("ordered ", 1)[1].split()[0].replace(",", "")) >= 12  # ≥ one batch per page
    assert "heuristic (no trained model)" not in light


@pytest.mark.parametrize("content", ["{", "[]"])
def test_a_damaged_promotion_state_of_the_heavy_ranker_is_not_untrained(tiny_world_dir, tmp_path, content):
    path = _world(tiny_world_dir, tmp_path)
    reg = ModelRegistry(models_dir(state_dir(path)))
    _register(reg, "heavy_ranker", FEATURE_SCHEMA)
    (models_dir(state_dir(path)) / "heavy_ranker" / "promoted.json").write_text(content)
    engine = RecommendationEngine.open(path, cache=False)
    status = engine.model_versions()["heavy_ranker"]
    engine.close()
    assert status.startswith("corrupt: heavy_ranker: promotion state ") and status.endswith(FALLBACK)
