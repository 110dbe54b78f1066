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
from foryou.timeline.engine import RecommendationEngine
from foryou.training.pipeline import train_all


def train_models(engine: RecommendationEngine, dataset: Path, state: Path, config: ForYouConfig | None = None,
                 only: str | None = None, promote: bool = True) -> dict[str, Any]:
    """Train (`only`: one model of training.pipeline.MODELS), register, promote (unless `promote=False`)
    and reload. Returns each model's metrics plus `models`: what the engine serves afterwards."""
    metrics = train_all(dataset, config or engine.config, only=only, promote=promote, state=state)
    return {**metrics, "models": engine.reload_models()}
