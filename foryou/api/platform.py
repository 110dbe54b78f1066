"""`AgentPlatform`: the engine as an agent-simulation platform calls it, with the platform's own ids.

    platform = AgentPlatform.open("runs/imports/mydata")          # or a synthetic world
    feed = platform.recommend("alice", num_results=20)              # Feed: items with the platform's ids
    platform.record_interaction("alice", feed.post_ids[0], "like")  # off her next page
    platform.add_content("post-123", "alice")                       # in her followers' next pages
    platform.record_interaction("alice", "bob", "follow")           # relations name an account
    feed = await platform.arecommend("alice")                       # every method has an async twin

Thin over `RecommendationEngine` (which resolves external ids, data.ids) plus the running A/B
experiments (`foryou.service.experiments.ServedExperiments`: the same assignment, exposure and outcome
logging as the HTTP service, so `foryou experiments results` reads either). Writes change the engine's
real-time overlay in memory; the HTTP service (`foryou serve`) is the durable path.

World time: the dataset's end (`engine.now`) plus the wall seconds since the platform opened, so an
agent's new post is older than the next page by at least a second and live posts age as in the service.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from foryou.api.experiments import create_experiment, experiment_results
from foryou.api.training import train_models
from foryou.config import ForYouConfig
from foryou.data.ids import ExternalId
from foryou.data.state import state_dir
from foryou.experiments import Experiment
from foryou.service.experiments import ServedExperiments
from foryou.timeline.engine import RecommendationEngine, TimelineResponse
from foryou.timeline.page import TimelineItem
from foryou.vocab import RELATIONS


@dataclass
class Feed:
    """One page for one user, with the platform's ids (the engine's items as `TimelineResponse.shown` gives
    them); `experiments`: {experiment: arm} the user is in."""

    user_id: ExternalId
    items: list[TimelineItem]
    cold_start: bool
    sources: dict[str, int]
    models: dict[str, str]
    experiments: dict[str, str]
    timings_ms: dict[str, float]

    @property
    def post_ids(self) -> list[ExternalId]:
        return [it.post_id for it in self.items]


class AgentPlatform:
    """Reads, writes and A/B experiments of one dataset for an agent platform (sync and async)."""

    def __init__(self, engine: RecommendationEngine, dataset: str | Path, state: str | Path | None = None):
        self.engine = engine
        self.dataset = Path(dataset)
        self.state = Path(engine.state_dir) if engine.state_dir is not None else state_dir(self.dataset, state)
        self.experiments = ServedExperiments(self.dataset, self.state)
        self._t0 = time.monotonic()

    @classmethod
    def open(cls, dataset: str | Path, config: ForYouConfig | None = None,
             state: str | Path | None = None) -> AgentPlatform:
        """The dataset's engine (models and serving snapshot from its state directory)."""
        return cls(RecommendationEngine.open(dataset, config, state=state), dataset, state)

    def clock(self) -> int:
        """World time now (Unix seconds): the dataset's end plus the wall seconds since opening."""
        return int(self.engine.now) + int(time.monotonic() - self._t0)

    # -- reads ----------------------------------------------------------------------------------------
    def recommend(self, user_id: ExternalId, num_results: int | None = None, context: dict[str, Any] | None = None,
                  exclude: list[ExternalId] | None = None) -> Feed:
        """The user's next page (`num_results` posts, the configured page size by default) under their
        experiment arms; the exposure is logged. `exclude`: posts already shown (a scroll's next page)."""
        uid = self.engine.user_id_of(user_id)
        overrides, arms = self.experiments.overrides_for(uid)
        now = self.clock() + 1
        page = self.engine.recommend(uid, num_results, context, now=now, exclude=exclude, overrides=overrides or None)
        if arms:
            self.experiments.log_exposure(arms, uid, now, len(page.items), None)
        return self._feed(page, arms)

    def _feed(self, page: TimelineResponse, arms: dict[str, str]) -> Feed:
        shown = page.shown(self.engine.ids)
        return Feed(shown.user_id, shown.items, shown.cold_start, shown.sources, shown.models, arms,
                    shown.timings_ms)

    # -- writes ---------------------------------------------------------------------------------------
    def record_interaction(self, user_id: ExternalId, content_id: ExternalId, interaction_type: str,
                           **details: Any) -> None:
        """An engagement of `user_id` with the post `content_id` (like, reply, dwell, ..., impression), or a
        relation to the account `content_id` (follow, unfollow, block, mute, unblock, unmute). It shapes
        the user's very next page. `details`: `dwell_time` (seconds, the outcome's value) and anything the
        platform keeps; `t` overrides the world time."""
        t = int(details.pop("t", None) or self.clock())
        if interaction_type in RELATIONS:
            self.relate(user_id, content_id, interaction_type, t=t)
            return
        uid, pid = self.engine.user_id_of(user_id), self.engine.post_id_of(content_id)
        self.engine.record_interaction(uid, pid, interaction_type, t=t)
        active = self.experiments.active()
        if active.experiments and active.assignments(uid):  # an outcome for the experiments' analysis
            active.record(uid, pid, interaction_type, t, float(details.get("dwell_time", 1.0)))

    def relate(self, user_id: ExternalId, target_id: ExternalId, action: str, t: int | None = None) -> None:
        """follow / unfollow / block / mute / unblock / unmute, in effect on the next page."""
        self.engine.relate(user_id, target_id, action, t=self.clock() if t is None else t)

    def follow(self, user_id: ExternalId, target_id: ExternalId) -> None:
        self.relate(user_id, target_id, "follow")

    def unfollow(self, user_id: ExternalId, target_id: ExternalId) -> None:
        self.relate(user_id, target_id, "unfollow")

    def add_content(self, content_id: ExternalId | None, author_id: ExternalId, kind: str = "original",
                    parent_id: ExternalId | None = None, **columns: Any) -> ExternalId:
        """A new post, live at once: in the author's followers' next pages (in-network), and found by
        the out-of-network sources once engaged with. `content_id`: the platform's id (None: numbered
        here); `columns`: topic, has_media, has_link, length, labels. Returns the post's id."""
        row = self.engine.add_post(content_id, author_id, t=self.clock(), kind=kind, parent_id=parent_id, **columns)
        return self.engine.ids.posts.show(self.engine.post_id_at(row))

    # -- models and experiments -----------------------------------------------------------------------
    def train_models(self, only: str | None = None, promote: bool | None = None) -> dict[str, Any]:
        """Train on the dataset into the state directory; serve what beats the served pages on validation
        (`promote`: True always, False never; see api.training)."""
        return train_models(self.engine, self.dataset, self.state, only=only, promote=promote)

    def create_experiment(self, config: dict[str, Any] | Experiment) -> Experiment:
        """An A/B experiment, applied from the next page on (see api.experiments)."""
        return create_experiment(self.dataset, self.state, config)

    def get_experiment_results(self, experiment_id: str) -> dict[str, Any]:
        return experiment_results(self.dataset, self.state, experiment_id)

    # -- async twins (the engine work runs in a worker thread: the event loop is never blocked) ----------
    async def arecommend(self, user_id: ExternalId, num_results: int | None = None,
                         context: dict[str, Any] | None = None, exclude: list[ExternalId] | None = None) -> Feed:
        return await asyncio.to_thread(self.recommend, user_id, num_results, context, exclude)

    async def arecord_interaction(self, user_id: ExternalId, content_id: ExternalId, interaction_type: str,
                                  **details: Any) -> None:
        await asyncio.to_thread(self.record_interaction, user_id, content_id, interaction_type, **details)

    async def arelate(self, user_id: ExternalId, target_id: ExternalId, action: str) -> None:
        await asyncio.to_thread(self.relate, user_id, target_id, action)

    async def afollow(self, user_id: ExternalId, target_id: ExternalId) -> None:
        await asyncio.to_thread(self.follow, user_id, target_id)

    async def aunfollow(self, user_id: ExternalId, target_id: ExternalId) -> None:
        await asyncio.to_thread(self.unfollow, user_id, target_id)

    async def aadd_content(self, content_id: ExternalId | None, author_id: ExternalId, **columns: Any) -> ExternalId:
        return await asyncio.to_thread(self.add_content, content_id, author_id, **columns)

    async def atrain_models(self, only: str | None = None, promote: bool | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.train_models, only, promote)

    async def acreate_experiment(self, config: dict[str, Any] | Experiment) -> Experiment:
        return await asyncio.to_thread(self.create_experiment, config)

    async def aget_experiment_results(self, experiment_id: str) -> dict[str, Any]:
        return await asyncio.to_thread(self.get_experiment_results, experiment_id)

    def close(self) -> None:
        self.experiments.close()
        self.engine.close()
