"""The closed loop: the world's users log in, are served pages by the engine (one arm each, by the
experiment's assignment), act according to the ground truth, and the engine ingests every action
in real time; new posts keep arriving. Measured per arm and day against the oracle.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from pydantic import BaseModel, ConfigDict, Field

from foryou.config import ForYouConfig
from foryou.data.dataset import read_manifest
from foryou.data.world.truth import GroundTruth
from foryou.experiments.analysis import UserTable, analyse, event_utility
from foryou.experiments.assignment import assign
from foryou.experiments.definition import Arm, Experiment
from foryou.experiments.store import ExperimentLog
from foryou.monitoring.drift import DriftMonitor
from foryou.monitoring.exposure import ExposureMonitor
from foryou.monitoring.feedback import FeedbackCollector
from foryou.simulation.arrivals import Arrivals, draw_arrivals, extend_truth
from foryou.simulation.behaviour import SLOT_SECONDS, BehaviourConfig, act, day_sessions
from foryou.vocab import DAY, ENGAGEMENT_KINDS, NEGATIVE, POSITIVE

log = logging.getLogger("foryou.simulation")
Progress = Callable[[str, float], None]
KIND_INDEX = {k: i for i, k in enumerate(ENGAGEMENT_KINDS)}
DRIFT_FEATURES = ("post_rate", "author_rate", "post_impressions_log", "age_log_h", "user_topic_share",
                  "author_followers_log", "user_positive_log", "in_network")
REGRET_SUMS = ("regret", "regret_pages", "new_post_regret", "new_post_slots")
BOOTSTRAP = 2000
DAY_METRICS = ("sessions", "pages", "impressions", "positives", "negatives", "clicks", "follows",
               "realised_utility", "expected_utility", "regret", "regret_pages", "oracle_utility", "out_of_network",
               "new_post_regret", "new_post_slots",
               "page_topics", "page_authors", "page_items", "new_post_impressions", "new_post_positives", "empty_pages")


class SimulationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    days: int = Field(14, ge=1)
    seed: int = 0
    user_share: float = Field(1.0, gt=0, le=1, description="share of the world's users simulated (sampled once)")
    page_size: int = Field(35, ge=1, le=200)
    behaviour: BehaviourConfig = BehaviourConfig()
    regret_share: float = Field(0.25, ge=0, le=1, description="share of first pages scored against the oracle")
    new_posts: bool = Field(True, description="new posts keep arriving (needs engine.add_post)")
    retrain: bool = Field(False, description="retrain the heavy ranker every night on world + feedback")
    drift_rows: int = Field(20_000, ge=100, description="rows per drift sample (training and each live day)")


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


class Simulation:
    def __init__(self, world_dir: str | Path, config: SimulationConfig | None = None,
                 experiment: Experiment | None = None, engine_config: ForYouConfig | None = None,
                 engine: Any = None, out: str | Path | None = None, progress: Progress | None = None):
        self.world_dir = Path(world_dir)
        self.cfg = config or SimulationConfig()
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
        self.can_add_posts = hasattr(engine, "add_post")
        if self.arrivals is not None and not self.can_add_posts:
            log.warning("engine has no add_post: simulating without new posts")
            self.arrivals = None
        self.truth = extend_truth(truth, self.arrivals) if self.arrivals is not None else truth
        self.arms = list(experiment.arms) if experiment else [Arm(name="all")]
        self.users = self.truth.user_ids
        rng = np.random.default_rng([self.cfg.seed, 1])
        n_users = len(self.users)
        keep = np.sort(rng.choice(n_users, max(round(n_users * self.cfg.user_share), 1), replace=False))
        self.sim_rows = keep
        self.arm_of = assign(experiment, self.users) if experiment else np.zeros(n_users, dtype=np.int64)
        self.utility_of = event_utility(engine_config.weights if engine_config else None)

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
        n_arms, n_users, days = len(self.arms), len(self.users), cfg.days
        rng = np.random.default_rng([cfg.seed, 2])
        sums = {m: np.zeros((n_arms + 1, days)) for m in DAY_METRICS}  # row n_arms: users outside
        per_user = {k: np.zeros(n_users) for k in ("sessions", "impressions", "positives", "negatives", "utility")}
        # Regret per user and day, for intervals by resampling users.
        per_user.update({k: np.zeros((n_users, days)) for k in REGRET_SUMS})
        followers = self._followers()
        exposure = [ExposureMonitor(followers) for _ in range(n_arms + 1)]
        exposure_daily: dict[str, list[dict[str, float]]] = {a.name: [] for a in self.arms}
        topic_seen = np.zeros((n_users, truth.params.n_topics))
        bubble = {m: np.zeros((n_arms + 1, days)) for m in ("entropy_seen", "entropy_interest", "kl", "bubble_users")}
        viewed: dict[int, list[int]] = defaultdict(list)
        self.feedback = feedback = FeedbackCollector()
        self.retrained: list[dict[str, Any]] = []
        self._engagements: list[tuple] = []
        log_path = (self.out / "experiment_log.sqlite") if self.out and self.experiment else None
        if log_path is not None and log_path.exists():
            log_path.unlink()
        exp_log = ExperimentLog(log_path) if log_path else None
        drift_ref, pred_ref, drift_days = self._feature_reference(), None, []
        self._published, session_id = 0, 0
        t0 = time.perf_counter()
        interest_entropy = _entropy(truth.latent.interests)
        self._n_world_posts = n_world_posts = \
            len(truth.posts.post_id) - (len(self.arrivals) if self.arrivals is not None else 0)
        for d in range(days):
            day_start = self.start + d * DAY
            s_users, s_times = day_sessions(truth.latent.activity, self.sim_rows, day_start, rng)
            exposures, events = [], []
            imp_cols: dict[str, list] = defaultdict(list)
            drift_rows: list[tuple[int, int, int]] = []
            preds: dict[str, list[float]] = defaultdict(list)
            topic_seen[:] = 0
            for m in exposure:
                m.reset()
            for i, (u, t) in enumerate(zip(s_users.tolist(), s_times.tolist(), strict=True)):
                if i % 200 == 0:
                    self.progress(f"day {d + 1}/{days}", i / max(len(s_users), 1))
                self._published = self._publish(self._published, t)
                arm = int(self.arm_of[u])
                a = arm if arm >= 0 else n_arms
                overrides = self.arms[arm].overrides if arm >= 0 else None
                uid = int(self.users[u])
                session_id += 1
                sums["sessions"][a, d] += 1
                per_user["sessions"][u] += 1
                page = self.engine.recommend(uid, n=cfg.page_size, now=t, overrides=overrides or None)
                if self.experiment is not None and arm >= 0:
                    exposures.append((self.experiment.name, self.arms[arm].name, uid, t, session_id, len(page.items)))
                if rng.random() < cfg.regret_share:
                    self._regret(sums, per_user, a, d, u, t, page, viewed)
                t_page, pages = t, 0
                while True:
                    pages += 1
                    sums["pages"][a, d] += 1
                    if not page.items:
                        sums["empty_pages"][a, d] += 1
                        break
                    ids = np.fromiter((it.post_id for it in page.items), np.int64, len(page.items))
                    rows = truth.post_rows(ids)
                    sums["page_items"][a, d] += len(rows)
                    sums["page_topics"][a, d] += len(np.unique(truth.posts.topic[rows]))
                    sums["page_authors"][a, d] += len(np.unique(truth.posts.author_row[rows]))
                    acts = act(truth, u, rows, t_page, cfg.behaviour, rng)
                    k = acts.depth
                    for it in page.items[:5]:
                        for h, p in it.predictions.items():
                            preds[h].append(p)
                    in_net = np.fromiter((it.in_network for it in page.items[:k]), bool, k)
                    util_exp = truth.utility_from({h: v[:k] for h, v in acts.probs.items()})
                    self._ingest(uid, ids[:k], acts, events if arm >= 0 and exp_log else None, per_user, u,
                                 sums, a, d)
                    new = rows[:k] >= n_world_posts
                    sums["new_post_impressions"][a, d] += int(new.sum())
                    sums["new_post_positives"][a, d] += sum(
                        1 for i_, kk in enumerate(acts.kinds) if new[i_] and any(ENGAGEMENT_KINDS[x] in POSITIVE
                                                                                 for x in kk))
                    sums["impressions"][a, d] += k
                    sums["expected_utility"][a, d] += float(util_exp.sum())
                    sums["out_of_network"][a, d] += int((~in_net).sum())
                    per_user["impressions"][u] += k
                    exposure[a].observe(truth.posts.author_row[rows[:k]], in_net)
                    np.add.at(topic_seen[u], np.maximum(truth.posts.topic[rows[:k]], 0), 1)
                    viewed[u].extend(rows[:k].tolist())
                    imp_cols["user"].append(np.full(k, uid))
                    imp_cols["post"].append(ids[:k])
                    imp_cols["t"].append(acts.times)
                    imp_cols["session"].append(np.full(k, session_id))
                    imp_cols["position"].append(np.arange(k) + (pages - 1) * cfg.page_size)
                    if len(drift_rows) < cfg.drift_rows:
                        drift_rows.extend(zip([u] * k, ids[:k].tolist(), acts.times.tolist(), strict=True))
                    if not acts.reached_end or pages >= cfg.behaviour.max_pages:
                        break
                    t_page = int(acts.times[-1]) + SLOT_SECONDS
                    page = self.engine.recommend(uid, n=cfg.page_size, now=t_page, cursor=page.cursor,
                                                 overrides=overrides or None)
            # -- end of day ---------------------------------------------------------------------
            self.progress(f"day {d + 1}/{days}", 1.0)
            if hasattr(self.engine, "flush"):  # an HTTP engine sends actions in batches
                self.engine.flush()
            if imp_cols["user"]:
                feedback.add_impressions(*(np.concatenate(imp_cols[c]) for c in ("user", "post", "t", "session",
                                                                                 "position")))
            if exp_log is not None:
                exp_log.log_exposures(exposures)
                exp_log.log_events(events)
            eligible = self._eligible_authors(day_start + DAY)
            for i_arm, arm in enumerate(self.arms):
                exposure_daily[arm.name].append(exposure[i_arm].report(eligible, publish=False))
            self._bubble(bubble, topic_seen, interest_entropy, d, n_arms)
            drift_days.append(self._drift(d, drift_ref, pred_ref, drift_rows, preds))
            if pred_ref is None:
                pred_ref = {h: np.asarray(v) for h, v in preds.items()}
            if cfg.retrain and d < days - 1:
                self._retrain(d)
            log.info("simulated day", extra={"day": d + 1, "sessions": len(s_users),
                                             "seconds": round(time.perf_counter() - t0, 1)})
        result = self._result(sums, bubble, exposure_daily, per_user, exp_log, drift_days, time.perf_counter() - t0)
        if exp_log is not None:
            exp_log.close()
        return result

    # -- steps ------------------------------------------------------------------------------------

    def _publish(self, published: int, t: int) -> int:
        """Hand the engine every new post created by time t."""
        a = self.arrivals
        if a is None:
            return published
        until = int(np.searchsorted(a.created_at, t, side="right"))
        users = self.users
        for i in range(published, until):
            self.engine.add_post(int(a.post_id[i]), int(users[a.author_row[i]]), t=int(a.created_at[i]),
                                 topic=int(a.topic[i]), has_media=bool(a.has_media[i]), has_link=bool(a.has_link[i]),
                                 length=int(a.length[i]), labels={lb: bool(v[i]) for lb, v in a.labels.items()})
        return until

    def _ingest(self, uid: int, ids: np.ndarray, acts, events: list | None, per_user: dict, u: int,
                sums: dict, a: int, d: int) -> None:
        """Every viewed post's impression and actions go to the engine as they happen."""
        record = self.engine.record_interaction
        for i, pid in enumerate(ids.tolist()):
            t = int(acts.times[i])
            record(uid, pid, "impression", t=t)
            if events is not None:
                events.append((uid, pid, "impression", t, 1.0))
            for j, v in zip(acts.kinds[i].tolist(), acts.values[i].tolist(), strict=True):
                kind = ENGAGEMENT_KINDS[j]
                value = v if kind == "dwell" else 1.0  # dwell seconds
                record(uid, pid, kind, t=t + 1, value=value)
                self._engagements.append((uid, pid, kind, t + 1, value))
                if events is not None:
                    events.append((uid, pid, kind, t + 1, v))
                w = self.utility_of.get(kind, 0.0)
                per_user["utility"][u] += w
                sums["realised_utility"][a, d] += w
                if kind in POSITIVE:
                    per_user["positives"][u] += 1
                    sums["positives"][a, d] += 1
                elif kind in NEGATIVE:
                    per_user["negatives"][u] += 1
                    sums["negatives"][a, d] += 1
                elif kind == "click":
                    sums["clicks"][a, d] += 1
                elif kind == "follow_author":
                    sums["follows"][a, d] += 1

    def _regret(self, sums: dict, per_user: dict, a: int, d: int, u: int, t: int, page, viewed: dict) -> None:
        """Per-slot regret of the first page against the oracle page (best eligible posts the user
        has not viewed in this simulation, by true expected utility at the request time). On new
        posts (created during the simulation): the k new posts the page holds against the best k
        eligible new posts — how well the engine picks among posts it has little evidence on,
        which is what exploration is for."""
        truth = self.truth
        k = len(page.items)
        rows = truth.eligible_rows(u, t)
        if viewed.get(u):
            rows = rows[~np.isin(rows, np.asarray(viewed[u]))]
        if k == 0 or len(rows) == 0:
            return
        util = truth.utility_from(truth.probabilities_rows(np.full(len(rows), u), rows, np.int64(t)))
        k = min(k, len(util))
        oracle = np.partition(-util, k - 1)[:k].sum() * -1 / k
        served = truth.post_rows(np.fromiter((it.post_id for it in page.items), np.int64, len(page.items)))[:k]
        got_all = truth.utility_from(truth.probabilities_rows(np.full(k, u), served, np.int64(t)))
        regret = max(oracle - float(got_all.mean()), 0.0)
        sums["regret"][a, d] += regret
        sums["oracle_utility"][a, d] += oracle
        sums["regret_pages"][a, d] += 1
        per_user["regret"][u, d] += regret
        per_user["regret_pages"][u, d] += 1
        new = served >= self._n_world_posts
        kn = int(new.sum())
        if kn:
            pool = util[rows >= self._n_world_posts]
            kn = min(kn, len(pool))
            best = -np.partition(-pool, kn - 1)[:kn].sum() if kn else 0.0
            got = np.sort(got_all[new])[::-1][:kn].sum()
            loss = max(float(best - got), 0.0)  # summed over the kn slots
            sums["new_post_regret"][a, d] += loss
            sums["new_post_slots"][a, d] += kn
            per_user["new_post_regret"][u, d] += loss
            per_user["new_post_slots"][u, d] += kn

    def _followers(self) -> np.ndarray:
        f = pq.read_table(self.world_dir / "follows.parquet", columns=["dst_id"])["dst_id"].to_numpy()
        return np.bincount(self.truth.user_rows(f), minlength=len(self.users))

    def _eligible_authors(self, t: int) -> np.ndarray:
        p = self.truth.posts
        window = int(self.truth.params.window_hours * 3600)
        ok = (p.created_at < t) & (p.created_at >= t - window)
        return np.unique(p.author_row[ok])

    def _bubble(self, bubble: dict, seen: np.ndarray, interest_entropy: np.ndarray, d: int, n_arms: int) -> None:
        """Filter-bubble measure per arm: topic entropy of what users viewed today against the entropy
        of their interests, and KL(viewed ‖ interests) — lower entropy / higher KL = narrower feed."""
        total = seen.sum(1)
        ok = total >= 5
        if not ok.any():
            return
        p = seen[ok] / total[ok, None]
        q = self.truth.latent.interests[ok].astype(np.float64) * 0.99 + 0.01 / seen.shape[1]
        kl = np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / q), 0).sum(1)
        arm = self.arm_of[ok]
        arm = np.where(arm < 0, n_arms, arm)
        for name, v in (("entropy_seen", _entropy(p)), ("entropy_interest", interest_entropy[ok]), ("kl", kl)):
            bubble[name][:, d] = np.bincount(arm, weights=v, minlength=n_arms + 1)
        bubble["bubble_users"][:, d] = np.bincount(arm, minlength=n_arms + 1)

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
        ref = self._features(store, imp["user_id"].to_numpy()[pick], imp["post_id"].to_numpy()[pick], t[pick])
        return DriftMonitor(ref, kind="feature")

    @staticmethod
    def _features(store: Any, user_ids: np.ndarray, post_ids: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        names = tuple(n for n in DRIFT_FEATURES if n in _feature_names())
        u = np.searchsorted(store.user_ids, user_ids)
        p = np.searchsorted(store.post_id, post_ids)
        x = store.compute(u, p, t, names)
        return {n: x[:, i] for i, n in enumerate(names)}

    def _drift(self, d: int, ref: DriftMonitor | None, pred_ref: dict | None, rows: list, preds: dict) -> dict:
        out: dict[str, Any] = {"day": d + 1}
        if ref is not None and rows:
            u, p, t = (np.array(c) for c in zip(*rows, strict=True))
            live = self._features(self.engine.state.features, self.users[u], p, t)
            out["features"] = ref.check(live)
        if pred_ref is not None and preds:
            out["predictions"] = DriftMonitor(pred_ref, kind="prediction").check(
                {h: np.asarray(v) for h, v in preds.items()})
        return out

    def _retrain(self, d: int) -> None:
        """Nightly: world + feedback so far → a dataset; retrain the heavy ranker; serve it."""
        from foryou.timeline.loading import load_models
        from foryou.training.pipeline import train_all

        if self.out is None:
            raise ValueError("nightly retraining needs an output directory")
        path = self.write_feedback(self.out / "feedback")
        train_all(path, only="heavy_ranker")
        models, status = load_models(path, self.engine.state.features)
        line = status.get("heavy_ranker")
        if "heavy_ranker" in models:  # every arm's pipeline shares this models dict
            self.engine.state.models["heavy_ranker"] = models["heavy_ranker"]
            self.engine.model_status["heavy_ranker"] = f"{line}, retrained after day {d + 1}"
            self.retrained.append({"day": d + 1, "model": line})
            log.info("retrained", extra={"day": d + 1, "status": line})
        else:
            log.warning("retraining produced no servable heavy ranker", extra={"day": d + 1, "status": line})

    # -- feedback ---------------------------------------------------------------------------------

    def write_feedback(self, path: str | Path) -> Path:
        """World + everything the simulation served and users did so far (and the new posts), as a
        dataset for `foryou train`, with the extended ground truth."""
        fb = self.feedback
        fb._eng = []
        if self._engagements:
            u, p, k, t, v = zip(*self._engagements, strict=True)
            fb._eng = [(np.array(u), np.array(p), np.array(k, dtype=object), np.array(t), np.array(v, np.float32))]
        fb._posts = [self._arrival_columns(self._published)] if self._published else []
        return fb.write(self.world_dir, path, self.truth)

    def _arrival_columns(self, n: int) -> dict[str, np.ndarray]:
        a: Arrivals = self.arrivals
        return {"post_id": a.post_id[:n], "author_id": self.users[a.author_row[:n]], "created_at": a.created_at[:n],
                "topic": a.topic[:n], "has_media": a.has_media[:n], "has_link": a.has_link[:n],
                "length": a.length[:n], **{lb: v[:n] for lb, v in a.labels.items()}}

    # -- the result -------------------------------------------------------------------------------

    def _result(self, sums, bubble, exposure_daily, per_user, exp_log, drift_days, seconds) -> SimulationResult:
        daily: dict[str, dict[str, list[float]]] = {}
        for i, arm in enumerate(self.arms):
            s = {m: sums[m][i] for m in sums}
            imp = np.maximum(s["impressions"], 1)
            rp = np.maximum(s["regret_pages"], 1)
            bu = np.maximum(bubble["bubble_users"][i], 1)
            row = {
                "sessions": s["sessions"], "impressions": s["impressions"],
                "engagement_rate": s["positives"] / imp, "click_rate": s["clicks"] / imp,
                # Two utilities, named apart: expected = Σ wᵢ·pᵢ of the ground-truth probabilities of each
                # viewed post (no sampling noise); realised = X's weights summed over the actions users took
                # (what the experiment's per-user "utility" metric measures). They agree on average only.
                "expected_utility": s["expected_utility"] / imp, "realised_utility": s["realised_utility"] / imp,
                "negative_rate": s["negatives"] / imp, "session_depth": s["impressions"] / np.maximum(s["sessions"], 1),
                "regret": s["regret"] / rp, "cumulative_regret": np.cumsum(s["regret"] / rp),
                "new_post_regret": s["new_post_regret"] / np.maximum(s["new_post_slots"], 1),
                "cumulative_new_post_regret": np.cumsum(s["new_post_regret"] / np.maximum(s["new_post_slots"], 1)),
                "oracle_utility": s["oracle_utility"] / rp,
                "topic_diversity": s["page_topics"] / np.maximum(s["pages"] - s["empty_pages"], 1),
                "author_diversity": s["page_authors"] / np.maximum(s["page_items"], 1),
                "out_of_network_share": s["out_of_network"] / imp,
                "new_post_share": s["new_post_impressions"] / imp,
                "new_post_engagement": s["new_post_positives"] / np.maximum(s["new_post_impressions"], 1),
                "creator_gini": np.array([e["creator_gini"] for e in exposure_daily[arm.name]]),
                "popular_share": np.array([e["popular_share"] for e in exposure_daily[arm.name]]),
                "long_tail_share": np.array([e["long_tail_share"] for e in exposure_daily[arm.name]]),
                "topic_entropy_seen": bubble["entropy_seen"][i] / bu,
                "topic_entropy_interest": bubble["entropy_interest"][i] / bu,
                "topic_kl": bubble["kl"][i] / bu,
            }
            daily[arm.name] = {k: [round(float(x), 6) for x in v] for k, v in row.items()}
        experiment = None
        if self.experiment is not None:
            rows = self.sim_rows[(self.arm_of[self.sim_rows] >= 0) & (per_user["sessions"][self.sim_rows] > 0)]
            table = UserTable(arm=self.arm_of[rows], sessions=per_user["sessions"][rows],
                              impressions=per_user["impressions"][rows], positives=per_user["positives"][rows],
                              negatives=per_user["negatives"][rows], utility=per_user["utility"][rows])
            experiment = analyse(self.experiment, table)
        regret = self._regret_intervals(per_user)
        summary = {
            "world": str(self.world_dir), "days": self.cfg.days, "seed": self.cfg.seed, "seconds": round(seconds, 1),
            "users_simulated": len(self.sim_rows), "users_total": len(self.users),
            "sessions": int(sum(sums["sessions"].sum(1))), "impressions": int(sums["impressions"].sum()),
            "new_posts": len(self.arrivals) if self.arrivals is not None else 0,
            "new_posts_note": None if self.arrivals is not None else
            ("disabled" if not self.cfg.new_posts else "engine has no add_post: no new posts"),
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
        return SimulationResult(arms=[a.name for a in self.arms], days=self.cfg.days, start=self.start, daily=daily,
                                experiment=experiment, drift=drift_days, exposure=exposure_daily, summary=summary,
                                regret=regret)

    def _regret_intervals(self, per_user: dict) -> dict[str, Any]:
        """Cumulative regret (the sum over days of each day's per-slot regret, as plotted) per arm,
        all slots and new-post slots, with 95 % percentile intervals from resampling the arm's
        users (a user's pages are correlated, users are not); differences against the first arm
        resample the two arms independently."""
        rng = np.random.default_rng([self.cfg.seed, 4])
        draws: dict[str, dict[str, np.ndarray]] = {}
        out: dict[str, Any] = {"unit": "user", "resamples": BOOTSTRAP, "arms": {}, "vs_control": {}}
        for i, arm in enumerate(self.arms):
            rows = self.sim_rows[self.arm_of[self.sim_rows] == (i if self.experiment else 0)]
            rows = rows[per_user["regret_pages"][rows].sum(1) > 0]
            if not len(rows):
                continue
            weights = rng.multinomial(len(rows), np.full(len(rows), 1 / len(rows)), size=BOOTSTRAP)
            draws[arm.name], out["arms"][arm.name] = {}, {"users": len(rows)}
            for name, num, den in (("regret", "regret", "regret_pages"),
                                   ("new_post_regret", "new_post_regret", "new_post_slots")):
                n, m = per_user[num][rows], per_user[den][rows]
                point = float((n.sum(0) / np.maximum(m.sum(0), 1)).sum())
                boot = ((weights @ n) / np.maximum(weights @ m, 1)).sum(1)
                draws[arm.name][name] = boot
                out["arms"][arm.name][name] = {"cumulative": point, "low": float(np.quantile(boot, 0.025)),
                                               "high": float(np.quantile(boot, 0.975)),
                                               "slots": int(m.sum())}
        control = self.arms[0].name
        for arm in self.arms[1:]:
            if arm.name in draws and control in draws:
                out["vs_control"][arm.name] = {}
                for name in ("regret", "new_post_regret"):
                    diff = draws[arm.name][name] - draws[control][name]
                    point = out["arms"][arm.name][name]["cumulative"] - out["arms"][control][name]["cumulative"]
                    out["vs_control"][arm.name][name] = {
                        "diff": point, "low": float(np.quantile(diff, 0.025)), "high": float(np.quantile(diff, 0.975)),
                        "share_below_zero": float((diff < 0).mean())}
        return out


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, np.float64)
    p = p / np.maximum(p.sum(-1, keepdims=True), 1e-12)
    return -(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0)).sum(-1)


def _feature_names() -> tuple[str, ...]:
    from foryou.features import FEATURE_NAMES

    return FEATURE_NAMES
