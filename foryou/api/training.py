"""Training for an agent platform: `foryou.training.pipeline.train_all` on the dataset, into the state
directory, then the engine serves the new models from its next page (its real-time overlay stays).

What it trains on: the dataset's tables (engagements, impressions, follows, posts). Interactions recorded
through the platform live in the engine's real-time overlay only and are not in those tables, so they
shape pages at once but not the models; to train on them, serve through `foryou serve` (a durable event
store) and `foryou compact` it into the tables first."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from foryou.config import ForYouConfig
from foryou.eval.heuristic import tune_heuristic
from foryou.eval.promotion import gate
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.windows import resolve_for, unresolved
from foryou.training.pipeline import train_all


def train_models(engine: RecommendationEngine, dataset: Path, state: Path, config: ForYouConfig | None = None,
                 only: str | None = None, promote: bool | None = None) -> dict[str, Any]:
    """Train (`only`: one model of training.pipeline.MODELS) and register; promote each model whose
    validation pages beat what is served (foryou.eval.promotion, as `foryou train` does; `promote=True`
    always, False never); reload. Returns each model's metrics, `verdicts` (one line per model) and
    `models`: what the engine serves afterwards."""
    before = unresolved(engine.config, dataset, state)  # what the engine learns, before this run's verdict
    base = before if config is None else unresolved(config, dataset, state)
    gating = base.training.promotion
    heuristic = tune_heuristic(dataset, base, state, force=promote, min_gain=gating.min_gain,
                           max_users=gating.max_users, seed=gating.seed)
    config = resolve_for(dataset, base, state)  # the learned window, as the engine will serve it
    metrics = train_all(dataset, config, only=only, promote=False, state=state)
    candidates = {name: int(r["version"]) for name, r in metrics.items() if isinstance(r, dict) and "version" in r}
    verdicts = gate(dataset, candidates, config, state, force=promote, min_gain=gating.min_gain,
                    max_users=gating.max_users, seed=gating.seed)
    engine.config = engine.state.config = resolve_for(dataset, before, state)  # served from the reload on
    lines = [v.line() for v in ([heuristic] if heuristic is not None else []) + verdicts]
    return {**metrics, "verdicts": lines, "models": engine.reload_models()}
