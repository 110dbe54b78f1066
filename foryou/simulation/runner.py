"""The closed loop: the world's users log in, are served pages by the engine (one arm each, by the
experiment's assignment), act according to the ground truth, and the engine ingests every action
in real time; new posts keep arriving. Measured per arm and day against the oracle (simulation.tally).

Every page is requested through `serve`, the one place that talks to the engine's read path.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from foryou.config import ForYouConfig, SimulationConfig, merge_trees
from foryou.data.manifest import read_manifest
from foryou.data.world.truth import GroundTruth
from foryou.experiments.analysis import analyse, event_utility
from foryou.experiments.assignment import assign
from foryou.experiments.definition import Arm, Experiment
from foryou.experiments.store import ExperimentLog
from foryou.features import FEATURE_NAMES
from foryou.logs import Progress
from foryou.monitoring.drift import DriftMonitor
from foryou.monitoring.feedback import FeedbackCollector
from foryou.simulation.arrivals import Arrivals, draw_arrivals, extend_truth
from foryou.simulation.behaviour import SLOT_SECONDS, PageActions, act, day_sessions
from foryou.simulation.tally import Tally, entropy
from foryou.vocab import DAY, ENGAGEMENT_KINDS, HOUR, POSITIVE

log = logging.getLogger("foryou.simulation")
DRIFT_FEATURES = ("post_rate", "author_rate", "post_impressions_log", "age_log_h", "user_topic_share",
                  "author_followers_log", "user_positive_log", "in_network")
_POSITIVE_KINDS = np.isin(np.array(ENGAGEMENT_KINDS), POSITIVE)  # by index into ENGAGEMENT_KINDS


def settings(config: SimulationConfig | None, tree: ForYouConfig) -> SimulationConfig:
    """The run's settings: the config tree's `simulation` section (`--set simulation.…`) with the
    fields set on `config` (the CLI's options) on top."""
    if config is None:
        return tree.simulation
    return SimulationConfig.model_validate(merge_trees(tree.simulation.model_dump(),
                                                       config.model_dump(exclude_unset=True)))


@dataclass(frozen=True)
class PageRequest:
    user_id: int
    now: int
    overrides: dict[str, Any] | None = None  # the user's arm's config overrides
    exclude: tuple[int, ...] = ()  # post ids of the session's earlier pages (the next page continues them)


def serve(engine: Any, requests: Sequence[PageRequest], n: int) -> list[Any]:
    """One page per request, in order. The loop asks for one page at a time: a session's actions reach
    the engine before the next session is served (real-time learning), so a batch call
    (`recommend_many`) would change what users see unless sessions are grouped by time."""
    return [engine.recommend(r.user_id, n=n, now=r.now, overrides=r.overrides, exclude=r.exclude or None)
            for r in requests]


@dataclass
class SimulationResult:
    arms: list[str]
    days: int
    start: int
    daily: dict[str, dict[str, list[float]]]  # arm → metric → one value per day
    experiment: dict[str, Any] | None
    drift: list[dict[str, Any]]
    exposure: dict[str, list[dict[str, float]]]
    summary: dict[str, Any] = field(default_factory=dict)
    regret: dict[str, Any] = field(default_factory=dict)  # cumulative regret per arm with bootstrap intervals


@dataclass(frozen=True)
class Visit:
    """One session: the user (truth row and id), the arm (index, −1 outside the experiment) and its
    tally row, the day, the session id."""

    u: int
    user_id: int
    arm: int
    row: int
    day: int
    session: int
    overrides: dict[str, Any] | None


@dataclass
class DayLog:
    """What a day hands on at its end: exposures and events for the experiment log, engagements and
    served impressions for the feedback dataset, (user row, post, time) rows for the drift check and
    the top of each page's predictions."""

    exposures: list[tuple[Any, ...]] = field(default_factory=list)
    events: list[tuple[int, int, str, int, float]] = field(default_factory=list)
    engagements: list[tuple[int, int, str, int, float]] = field(default_factory=list)
    impressions: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    drift_rows: list[tuple[int, int, int]] = field(default_factory=list)
    predictions: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))


class Simulation:
    def __init__(self, world_dir: str | Path, config: SimulationConfig | None = None,
                 experiment: Experiment | None = None, engine_config: ForYouConfig | None = None,
                 engine: Any = None, out: str | Path | None = None, progress: Progress | None = None):
        self.world_dir = Path(world_dir)
        self.config = engine_config or ForYouConfig()
        self.cfg = settings(config, self.config)
        self.page_size = self.cfg.page_size or self.config.timeline.mixing.page_size
        self.experiment = experiment
        self.progress = progress or (lambda stage, frac: None)
        self.out = Path(out) if out else None
        manifest = read_manifest(self.world_dir)
        if not manifest.has_ground_truth:
            raise ValueError(f"{world_dir}: simulation needs a synthetic world with ground truth")
        self.manifest = manifest
        self.progress("opening the engine", 0.0)
        if engine is None:
            from foryou.timeline.engine import RecommendationEngine

            engine = RecommendationEngine.open(self.world_dir, engine_config)
        self.engine = engine
        self.progress("opening the engine", 1.0)
        self.start = int(manifest.time_range[1]) + 1
        truth = GroundTruth.load(self.world_dir)
        self.arrivals = draw_arrivals(self.world_dir, truth, self.start, self.cfg.days, self.cfg.seed) \
            if self.cfg.new_posts else None
        # new posts carry the world's ids (the ground truth knows them): not for an engine that assigns its own
        self.can_add_posts = not getattr(engine, "assigns_post_ids", False)
        if self.arrivals is not None and not self.can_add_posts:
            log.warning("the engine assigns its own post ids: simulating without new posts")
            self.arrivals = None
        self.truth = extend_truth(truth, self.arrivals) if self.arrivals is not None else truth
        self._n_world_posts = len(self.truth.posts.post_id) - (len(self.arrivals) if self.arrivals is not None else 0)
        self.arms = list(experiment.arms) if experiment else [Arm(name="all")]
        self.users = self.truth.user_ids
        rng = np.random.default_rng([self.cfg.seed, 1])
        n_users = len(self.users)
        keep = np.sort(rng.choice(n_users, max(round(n_users * self.cfg.user_share), 1), replace=False))
        self.sim_rows = keep
        self.arm_of = assign(experiment, self.users) if experiment else np.zeros(n_users, dtype=np.int64)
        self.utility_of = event_utility(self.config.weights)
        self.feedback = FeedbackCollector()
        self.engagements: list[tuple[int, int, str, int, float]] = []  # every action sent to the engine
        self.retrained: list[dict[str, Any]] = []
        self._published = 0

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> SimulationResult:
        # One request's ranker batch is too small to gain from torch's intra-op threads; on a shared
        # 2-core machine their spinning made the loop 4× slower (BENCHMARKS, simulation).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._run()
        finally:
            torch.set_num_threads(threads)

    def _run(self) -> SimulationResult:
        cfg, truth = self.cfg, self.truth
        self._rng = np.random.default_rng([cfg.seed, 2])
        self.feedback, self.engagements, self.retrained, self._published = FeedbackCollector(), [], [], 0
        tally = Tally(len(self.arms), len(self.users), cfg.days, truth.params.n_topics, self._followers(),
                      self.config.monitoring)
        exp_log = self._open_log()
        drift_ref, pred_ref, drift_days = self._feature_reference(), None, []
        interest_entropy = entropy(truth.latent.interests)
        self._session_id = 0
        t0 = time.perf_counter()
        for d in range(cfg.days):
            day = DayLog()
            tally.new_day()
            n_sessions = self._day(d, tally, day, log_events=exp_log is not None)
            self._end_of_day(day, exp_log)
            tally.end_day(d, self.arm_of, truth.latent.interests, interest_entropy,
                          self._eligible_authors(self.start + (d + 1) * DAY))
            drift_days.append(self._drift(d, drift_ref, pred_ref, day.drift_rows, day.predictions))
            if pred_ref is None:
                pred_ref = {h: np.asarray(v) for h, v in day.predictions.items()}
            if cfg.retrain and d < cfg.days - 1:
                self._retrain(d)
            log.info("simulated day", extra={"day": d + 1, "sessions": n_sessions,
                                             "seconds": round(time.perf_counter() - t0, 1)})
        result = self._result(tally, drift_days, time.perf_counter() - t0)
        if exp_log is not None:
            exp_log.close()
        return result

    def _open_log(self) -> ExperimentLog | None:
        """A fresh experiment log in the output directory (exposures and events of the experiment's users)."""
        if self.out is None or self.experiment is None:
            return None
        path = self.out / "experiment_log.sqlite"
        if path.exists():
            path.unlink()
        return ExperimentLog(path)

    def _day(self, d: int, tally: Tally, day: DayLog, log_events: bool) -> int:
        """Every session of day d, in time order; returns how many there were."""
        s_users, s_times = day_sessions(self.truth.latent.activity, self.sim_rows, self.start + d * DAY, self._rng)
        n_arms = len(self.arms)
        for i, (u, t) in enumerate(zip(s_users.tolist(), s_times.tolist(), strict=True)):
            if i % 200 == 0:
                self.progress(f"day {d + 1}/{self.cfg.days}", i / max(len(s_users), 1))
            self._published = self._publish(self._published, t)
            arm = int(self.arm_of[u])
            self._session_id += 1
            visit = Visit(u=u, user_id=int(self.users[u]), arm=arm, row=arm if arm >= 0 else n_arms, day=d,
                          session=self._session_id, overrides=(self.arms[arm].overrides or None) if arm >= 0 else None)
            self._session(visit, t, tally, day, log_events=log_events and arm >= 0)
        self.progress(f"day {d + 1}/{self.cfg.days}", 1.0)
        return len(s_users)

    def _session(self, v: Visit, t: int, tally: Tally, day: DayLog, log_events: bool) -> None:
        """A user logs in at t, reads the first page and scrolls on while the behaviour model lets them."""
        tally.session(v.row, v.day, v.u)
        page = serve(self.engine, [PageRequest(v.user_id, t, v.overrides)], self.page_size)[0]
        if self.experiment is not None and v.arm >= 0:
            day.exposures.append((self.experiment.name, self.arms[v.arm].name, v.user_id, t, v.session,
                                  len(page.items)))
        if self._rng.random() < self.cfg.regret_share:
            self._regret(tally, v, t, page)
        t_page, pages = t, 0
        served: tuple[int, ...] = ()  # post ids of the session's pages so far
        while True:
            pages += 1
            acts = self._read(v, page, t_page, pages, tally, day, log_events)
            if acts is None or not acts.reached_end or pages >= self.cfg.behaviour.max_pages:
                break
            t_page = int(acts.times[-1]) + SLOT_SECONDS
            served += tuple(it.post_id for it in page.items)
            page = serve(self.engine, [PageRequest(v.user_id, t_page, v.overrides, served)], self.page_size)[0]

    def _read(self, v: Visit, page: Any, t: int, page_no: int, tally: Tally, day: DayLog,
              log_events: bool) -> PageActions | None:
        """The user reads one page top-down from time t: what they view and do is tallied, sent to the
        engine and logged. None for an empty page."""
        if not page.items:
            tally.empty_page(v.row, v.day)
            return None
        truth = self.truth
        ids = np.fromiter((it.post_id for it in page.items), np.int64, len(page.items))
        rows = truth.post_rows(ids)
        tally.page(v.row, v.day, truth.posts.topic[rows], truth.posts.author_row[rows])
        acts = act(truth, v.u, rows, t, self.cfg.behaviour, self._rng)
        k = acts.depth
        for it in page.items[:5]:
            for h, p in it.predictions.items():
                day.predictions[h].append(p)
        in_net = np.fromiter((it.in_network for it in page.items[:k]), bool, k)
        util_exp = truth.utility_from({h: p[:k] for h, p in acts.probs.items()})
        self._ingest(v, ids[:k], acts, tally, day, log_events)
        engaged = np.array([_POSITIVE_KINDS[kk].any() for kk in acts.kinds], dtype=bool)
        viewed = rows[:k]
        tally.views(v.row, v.day, v.u, viewed, truth.posts.topic[viewed], truth.posts.author_row[viewed], in_net,
                    util_exp, viewed >= self._n_world_posts, engaged)
        imp = day.impressions
        imp["user"].append(np.full(k, v.user_id))
        imp["post"].append(ids[:k])
        imp["t"].append(acts.times)
        imp["session"].append(np.full(k, v.session))
        imp["position"].append(np.arange(k) + (page_no - 1) * self.page_size)
        if len(day.drift_rows) < self.cfg.drift_rows:
            day.drift_rows.extend(zip([v.u] * k, ids[:k].tolist(), acts.times.tolist(), strict=True))
        return acts

    def _end_of_day(self, day: DayLog, exp_log: ExperimentLog | None) -> None:
        """The day's actions reach the engine, its records the feedback dataset and the experiment log."""
        if hasattr(self.engine, "flush"):  # an HTTP engine sends actions in batches
            self.engine.flush()
        if day.impressions["user"]:
            self.feedback.add_impressions(*(np.concatenate(day.impressions[c])
                                            for c in ("user", "post", "t", "session", "position")))
        if day.engagements:
            u, p, k, t, value = zip(*day.engagements, strict=True)
            self.feedback.add_engagements(np.array(u), np.array(p), np.array(k, dtype=object), np.array(t),
                                          np.array(value, np.float32))
            self.engagements.extend(day.engagements)
        if exp_log is not None:
            exp_log.log_exposures(day.exposures)
            exp_log.log_events(day.events)

    # -- steps ------------------------------------------------------------------------------------

    def _publish(self, published: int, t: int) -> int:
        """Hand the engine (and the feedback dataset) every new post created by time t."""
        a = self.arrivals
        if a is None:
            return published
        until = int(np.searchsorted(a.created_at, t, side="right"))
        if until == published:
            return published
        users = self.users
        for i in range(published, until):
            self.engine.add_post(int(a.post_id[i]), int(users[a.author_row[i]]), t=int(a.created_at[i]),
                                 topic=int(a.topic[i]), has_media=bool(a.has_media[i]), has_link=bool(a.has_link[i]),
                                 length=int(a.length[i]), labels={lb: bool(v[i]) for lb, v in a.labels.items()})
        self.feedback.add_posts(_post_columns(a, users, slice(published, until)))
        return until

    def _ingest(self, v: Visit, ids: np.ndarray, acts: PageActions, tally: Tally, day: DayLog,
                log_events: bool) -> None:
        """Every viewed post's impression and actions go to the engine as they happen."""
        record = self.engine.record_interaction
        for i, pid in enumerate(ids.tolist()):
            t = int(acts.times[i])
            record(v.user_id, pid, "impression", t=t)
            if log_events:
                day.events.append((v.user_id, pid, "impression", t, 1.0))
            for j, x in zip(acts.kinds[i].tolist(), acts.values[i].tolist(), strict=True):
                kind = ENGAGEMENT_KINDS[j]
                value = x if kind == "dwell" else 1.0  # dwell seconds
                record(v.user_id, pid, kind, t=t + 1, value=value)
                day.engagements.append((v.user_id, pid, kind, t + 1, value))
                if log_events:
                    day.events.append((v.user_id, pid, kind, t + 1, x))
                tally.action(v.row, v.day, v.u, kind, self.utility_of.get(kind, 0.0))

    def _regret(self, tally: Tally, v: Visit, t: int, page: Any) -> None:
        """Per-slot regret of the first page against the oracle page (best eligible posts the user
        has not viewed in this simulation, by true expected utility at the request time). On new
        posts (created during the simulation): the k new posts the page holds against the best k
        eligible new posts — how well the engine picks among posts it has little evidence on,
        which is what exploration is for."""
        truth, u = self.truth, v.u
        k = len(page.items)
        rows = truth.eligible_rows(u, t)
        if tally.viewed.get(u):
            rows = rows[~np.isin(rows, np.asarray(tally.viewed[u]))]
        if k == 0 or len(rows) == 0:
            return
        at = np.int64(t)
        util = truth.utility_from(truth.probabilities_rows(np.full(len(rows), u), rows, at))
        k = min(k, len(util))
        oracle = np.partition(-util, k - 1)[:k].sum() * -1 / k
        served = truth.post_rows(np.fromiter((it.post_id for it in page.items), np.int64, len(page.items)))[:k]
        got_all = truth.utility_from(truth.probabilities_rows(np.full(k, u), served, at))
        tally.regret(v.row, v.day, u, max(oracle - float(got_all.mean()), 0.0), oracle)
        new = served >= self._n_world_posts
        kn = int(new.sum())
        if kn:
            pool = util[rows >= self._n_world_posts]
            kn = min(kn, len(pool))
            best = -np.partition(-pool, kn - 1)[:kn].sum() if kn else 0.0
            got = np.sort(got_all[new])[::-1][:kn].sum()
            tally.new_post_regret(v.row, v.day, u, max(float(best - got), 0.0), kn)  # summed over the kn slots

    def _followers(self) -> np.ndarray:
        f = pq.read_table(self.world_dir / "follows.parquet", columns=["dst_id"])["dst_id"].to_numpy()
        return np.bincount(self.truth.user_rows(f), minlength=len(self.users))

    def _eligible_authors(self, t: int) -> np.ndarray:
        p = self.truth.posts
        window = int(self.truth.params.window_hours * HOUR)
        ok = (p.created_at < t) & (p.created_at >= t - window)
        return np.unique(p.author_row[ok])

    def _feature_reference(self) -> DriftMonitor | None:
        """Ranking features of a sample of training-window impressions, at their own times."""
        store = getattr(getattr(self.engine, "state", None), "features", None)
        if store is None:
            return None
        imp = pq.read_table(self.world_dir / "impressions.parquet", columns=["user_id", "post_id", "created_at"])
        t = imp["created_at"].to_numpy()
        train = np.flatnonzero(t < self.manifest.split.train_end)
        rng = np.random.default_rng([self.cfg.seed, 3])
        pick = rng.choice(train, min(self.cfg.drift_rows, len(train)), replace=False)
        ref = _features(store, imp["user_id"].to_numpy()[pick], imp["post_id"].to_numpy()[pick], t[pick])
        return DriftMonitor(ref, kind="feature", thresholds=self.config.monitoring.drift)

    def _drift(self, d: int, ref: DriftMonitor | None, pred_ref: dict[str, np.ndarray] | None,
               rows: list[tuple[int, int, int]], preds: dict[str, list[float]]) -> dict[str, Any]:
        out: dict[str, Any] = {"day": d + 1}
        if ref is not None and rows:
            u, p, t = (np.array(c) for c in zip(*rows, strict=True))
            live = _features(self.engine.state.store, self.users[u], p, t)
            out["features"] = ref.check(live)
        if pred_ref is not None and preds:
            monitor = DriftMonitor(pred_ref, kind="prediction", thresholds=self.config.monitoring.drift)
            out["predictions"] = monitor.check({h: np.asarray(v) for h, v in preds.items()})
        return out

    def _retrain(self, d: int) -> None:
        """Nightly: world + feedback so far → a dataset; retrain the heavy ranker; serve it."""
        from foryou.data.state import models_dir, state_dir
        from foryou.timeline.loading import load_models
        from foryou.training.pipeline import train_all

        if self.out is None:
            raise ValueError("nightly retraining needs an output directory")
        path = self.write_feedback(self.out / "feedback")
        train_all(path, only="heavy_ranker")
        models, status = load_models(models_dir(state_dir(path)), self.engine.state.store)
        line = status.get("heavy_ranker")
        if "heavy_ranker" in models:  # every arm's pipeline shares this models dict
            self.engine.state.models["heavy_ranker"] = models["heavy_ranker"]
            self.engine.model_status["heavy_ranker"] = f"{line}, retrained after day {d + 1}"
            self.retrained.append({"day": d + 1, "model": line})
            log.info("retrained", extra={"day": d + 1, "status": line})
        else:
            log.warning("retraining produced no servable heavy ranker", extra={"day": d + 1, "status": line})

    def write_feedback(self, path: str | Path) -> Path:
        """World + everything the simulation served and users did so far (and the new posts), as a
        dataset for `foryou train`, with the extended ground truth."""
        return self.feedback.write(self.world_dir, path, self.truth)

    # -- the result -------------------------------------------------------------------------------

    def _result(self, tally: Tally, drift_days: list[dict[str, Any]], seconds: float) -> SimulationResult:
        daily = {arm.name: tally.daily(i) for i, arm in enumerate(self.arms)}
        experiment = None
        if self.experiment is not None:
            rows = self.sim_rows[(self.arm_of[self.sim_rows] >= 0) & (tally.per_user["sessions"][self.sim_rows] > 0)]
            experiment = analyse(self.experiment, tally.user_table(rows, self.arm_of[rows]))
        groups = {arm.name: self.sim_rows[self.arm_of[self.sim_rows] == (i if self.experiment else 0)]
                  for i, arm in enumerate(self.arms)}
        return SimulationResult(arms=[a.name for a in self.arms], days=self.cfg.days, start=self.start, daily=daily,
                                experiment=experiment, drift=drift_days,
                                exposure={a.name: tally.exposure_daily[i] for i, a in enumerate(self.arms)},
                                summary=self._summary(tally, seconds),
                                regret=tally.regret_intervals(groups, self.cfg.seed))

    def _summary(self, tally: Tally, seconds: float) -> dict[str, Any]:
        summary = {
            "world": str(self.world_dir), "days": self.cfg.days, "seed": self.cfg.seed, "seconds": round(seconds, 1),
            "users_simulated": len(self.sim_rows), "users_total": len(self.users),
            "sessions": int(sum(tally.sums["sessions"].sum(1))), "impressions": int(tally.sums["impressions"].sum()),
            "new_posts": len(self.arrivals) if self.arrivals is not None else 0,
            "new_posts_note": None if self.arrivals is not None else
            ("disabled" if not self.cfg.new_posts else "the engine assigns its own post ids: no new posts"),
            "engine_models": self.engine.model_versions() if hasattr(self.engine, "model_versions") else {},
            "behaviour": self.cfg.behaviour.model_dump(), "regret_share": self.cfg.regret_share,
            "retrained": self.retrained,
        }
        served = getattr(self.engine, "served_arms", None)
        if served is not None and self.experiment is not None:  # over HTTP the service applies the arms
            names = [a.name for a in self.arms]
            rows = self.truth.user_rows(np.fromiter(served, np.int64, len(served)))
            ours = [names[a] if a >= 0 else None for a in self.arm_of[rows].tolist()]
            theirs = [arms.get(self.experiment.name) for arms in served.values()]
            summary["arm_mismatches"] = sum(a != b for a, b in zip(ours, theirs, strict=True))
        return summary


def _post_columns(a: Arrivals, users: np.ndarray, part: slice) -> dict[str, np.ndarray]:
    """New posts as the feedback dataset's post columns."""
    return {"post_id": a.post_id[part], "author_id": users[a.author_row[part]], "created_at": a.created_at[part],
            "topic": a.topic[part], "has_media": a.has_media[part], "has_link": a.has_link[part],
            "length": a.length[part], **{lb: v[part] for lb, v in a.labels.items()}}


def _features(store: Any, user_ids: np.ndarray, post_ids: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """The drift-watched ranking features of (user, post, time) rows."""
    names = tuple(n for n in DRIFT_FEATURES if n in FEATURE_NAMES)
    u = np.searchsorted(store.user_ids, user_ids)
    p = np.searchsorted(store.post_id, post_ids)
    x = store.compute(u, p, t, names)
    return {n: x[:, i] for i, n in enumerate(names)}
