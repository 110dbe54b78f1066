"""`foryou eval`: our served pages and the baselines' lists on one split, every metric with a bootstrap
95 % interval over users, per-source hits, calibration, score distributions, and (synthetic worlds)
expected utility against the oracle. Returns one JSON-ready dict; the report renders only that dict."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from foryou.config import ForYouConfig
from foryou.data.dataset import Dataset
from foryou.eval import metrics as M
from foryou.eval.baselines import BASELINES, Catalog, build_catalog
from foryou.eval.protocols import HELD_OUT, EvalError, EvalSplit, make_split, validation_split
from foryou.eval.scoring import SYSTEM, segment_metrics
from foryou.eval.scoring import method_metrics as _method_metrics
from foryou.eval.scoring import retrieval_recall as _retrieval
from foryou.eval.scoring import summary as _summary
from foryou.eval.system import Pages, candidates, retrieve, serve_pages
from foryou.eval.tuning import VALID_USERS, tuned_lists, validation_summary
from foryou.logs import Progress, Timer
from foryou.timeline.engine import RecommendationEngine
from foryou.vocab import NEGATIVE_FEEDBACK

log = logging.getLogger("foryou.eval")
CALIBRATION_HEADS = ("click", "like", "reply", "dwell", "negative_feedback")
# The negative kinds the heavy ranker pools into its "negative_feedback" head (report has a head of its own).
MINIRECSYS_ENGAGEMENT_N = 100  # the mimic scores its engagement predictions on 100-item lists


def evaluate(path: str | Path, protocol: str = "temporal", baselines: tuple[str, ...] = BASELINES,
             config: ForYouConfig | None = None, max_users: int | None = None, seed: int = 0,
             oracle: bool = True, reps: int = 1000, progress: Progress | None = None,
             state: Path | None = None, segment: str = "all", tune: bool = True, workers: int = 1) -> dict[str, Any]:
    """`segment` (all, cold, warm) picks whom to evaluate, `max_users` samples them; `tune` tunes the
    baselines on the protocol's validation split (eval/tuning.py); `workers` > 1 fits them as Ray tasks."""
    progress = progress or (lambda stage, frac: None)
    config = config or ForYouConfig()
    path = Path(path)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    with Timer() as t:
        dataset = Dataset.load(path)
        split = make_split(dataset, protocol, max_users=max_users, seed=seed, segment=segment)
        if len(split.users) == 0:
            raise EvalError(f"{path}: no test users under the {protocol} protocol ({segment} users)")
        k_max = max(split.k_values)
        page_n = max(k_max if protocol == "minirecsys" else config.timeline.mixing.page_size, k_max)
        valid = validation_split(split, dataset, VALID_USERS, seed) if tune and baselines else None
    timings["split"] = t.seconds

    progress("engine (train side)", 0.0)
    with Timer() as t:
        engine = _engine(path, dataset, split, config, state)
    progress("engine (train side)", 1.0)
    timings["engine"] = t.seconds
    with Timer() as t:
        pages, scored, served_models = _our_pages(engine, split, protocol, page_n, progress)
    timings["system"] = t.seconds
    with Timer() as t:
        retrieved = retrieve(engine, split, page_n, _stage(progress, "retrieval recall"))
    timings["retrieval"] = t.seconds

    catalog = build_catalog(split, config.timeline.sources.max_age_hours)
    if len(catalog) == 0 or (pages.post_id < 0).all():
        split.notes.append(f"{len(catalog)} posts pass the TooOldFilter at the split and our pages are "
                           f"{'empty' if (pages.post_id < 0).all() else 'not empty'}: on a catalog without fresh "
                           "posts, widen timeline.sources.max_age_hours (and the in-network / trending windows)")
    baseline_lists, baseline_info = tuned_lists(split, valid, catalog, config.timeline.sources.max_age_hours,
                                                baselines, max(page_n, scored.post_id.shape[1]), seed, progress,
                                                timings, workers)
    _reachable_note(split, catalog)
    lists = {SYSTEM: pages.post_id, **{name: b.post_id[:, :page_n] for name, b in baseline_lists.items()}}
    idx = M.bootstrap_indices(len(split.users), reps, seed)
    methods = {SYSTEM: _method_metrics(split, catalog, pages.post_id, scored.post_id,
                                       p_engaged(scored, split.positive_kinds), idx, probabilities=True)}
    for name, b in baseline_lists.items():
        methods[name] = _method_metrics(split, catalog, lists[name], b.post_id, b.score, idx, probabilities=False)

    result: dict[str, Any] = {
        "dataset": str(path), "dataset_name": dataset.manifest.name, "protocol": protocol,
        "date": dt.date.today().isoformat(), "as_of": split.as_of, "users": len(split.users),
        "relevant_pairs": len(split.truth_post), "k_values": list(split.k_values), "page_size": page_n,
        "catalog_size": len(catalog), "positive_kinds": list(split.positive_kinds),
        "baselines": baseline_info, "validation": validation_summary(valid), "bootstrap_reps": reps, "seed": seed,
        "config_overrides": _overrides(config), "models": served_models,
        "engine_errors": pages.errors, "notes": split.notes + _notes(baselines), "methods": methods,
        "sources": _sources(pages, split), "retrieval": _retrieval(retrieved, pages, split, idx),
        **_served_scores(scored, split), "heads": {"registry": _registry_heads(engine.state_dir)},
    }
    result["segments"] = segment_metrics(split, catalog, {SYSTEM: (pages.post_id, scored.post_id,
                                                                   p_engaged(scored, split.positive_kinds))}
                                         | {n: (lists[n], b.post_id, b.score) for n, b in baseline_lists.items()},
                                         retrieved, pages, reps, seed)
    if oracle and dataset.manifest.has_ground_truth and protocol == "temporal":
        with Timer() as t:
            result["oracle"], truth_parts = _oracle(path, dataset, split, engine, lists, pages, idx, progress)
        result["calibration"]["truth"] = truth_parts["calibration"]
        result["heads"]["served"] = truth_parts["heads"]
        timings["oracle"] = t.seconds
    engine.close()
    result["targets"] = _targets(result)
    timings["total"] = time.perf_counter() - t_all
    result["seconds"] = {k: round(v, 2) for k, v in timings.items()}
    log.info("evaluated", extra={"dataset": str(path), "protocol": protocol, "seconds": result["seconds"]})
    return result


def _engine(path: Path, dataset: Dataset, split: EvalSplit, config: ForYouConfig,
            state: Path | None) -> RecommendationEngine:
    """The engine as of the split: cut at the instant (temporal), or built from the history with the held-out
    rows removed and serving at the end of the data."""
    if split.protocol not in HELD_OUT:
        return RecommendationEngine.open(path, config, as_of=split.as_of, state=state)
    split.notes.append("the registry's models (if any are promoted) were trained on the temporal train window, "
                       "which may hold rows this protocol holds out; heuristic rankers learn nothing from them")
    return RecommendationEngine(Dataset(split.train.tables, dataset.manifest, path), config, as_of=split.as_of,
                                state=state)


def _reachable_note(split: EvalSplit, catalog: Catalog) -> None:
    """How many relevant pairs any method can list at all: their post is in the shared catalog."""
    inside = int(np.isin(split.truth_post, catalog.post_id).sum())
    split.notes.append(f"{inside:,} of {len(split.truth_post):,} relevant pairs are on catalog posts (the rest "
                       "no method can list)")


def _stage(progress: Progress, stage: str) -> Callable[[float], None]:
    """One stage's progress callback."""
    return lambda frac: progress(stage, frac)


def _our_pages(engine: RecommendationEngine, split: EvalSplit, protocol: str, page_n: int,
               progress: Progress) -> tuple[Pages, Pages, dict[str, str]]:
    """Our served pages, the lists our engagement metrics read (the pages themselves, or under the
    mimic's protocol a separate 100-item request) and the models that served them."""
    before = _light_batches(engine)
    pages = serve_pages(engine, split, page_n, _stage(progress, "our pages"))
    scored = pages
    if protocol == "minirecsys":
        scored = serve_pages(engine, split, MINIRECSYS_ENGAGEMENT_N, _stage(progress, "our 100-item lists"))
    served_models = engine.model_versions()  # what served our lists, not only what is loaded:
    served_models["light_ranker"] = engine.light_ranker_status(  # a light ranker runs only where its cut binds
        {side: n - before[side] for side, n in _light_batches(engine).items()})
    return pages, scored, served_models


def _served_scores(scored: Pages, split: EvalSplit) -> dict[str, Any]:
    """Our predicted P(engaged) of the served items against whether the user engaged in the test
    window: histograms by outcome and the observed calibration curve."""
    hits = M.hits_matrix(scored.post_id, split.truth_user, split.truth_post)
    valid = scored.post_id >= 0
    p = p_engaged(scored, split.positive_kinds)[valid]
    return {"score_distribution": _score_hist(p, hits[valid]),
            "calibration": {"observed": {"engaged": M.calibration_curve(hits[valid], p)}}}


def p_engaged(pages: Pages, kinds: tuple[str, ...]) -> np.ndarray:
    """P(any positive kind) from the heads the ranker predicts, assuming independence."""
    heads = [k for k in kinds if k in pages.predictions] or ["like"]
    miss = np.ones_like(pages.predictions[heads[0]])
    for h in heads:
        miss = miss * (1 - pages.predictions[h])
    return 1 - miss


def _sources(pages: Pages, split: EvalSplit) -> dict[str, dict[str, float]]:
    """Per candidate source of our pages: slots served and hits (whole page and top 10)."""
    hits = M.hits_matrix(pages.post_id, split.truth_user, split.truth_post)
    valid = pages.post_id >= 0
    top10 = np.zeros_like(valid)
    top10[:, :10] = True
    total_hits, total_slots = int(hits.sum()), int(valid.sum())
    out = {}
    for name in sorted(set(pages.source[valid].tolist())):
        m = (pages.source == name) & valid
        h = int(hits[m].sum())
        out[name] = {"served": int(m.sum()), "hits": h, "precision": round(h / max(int(m.sum()), 1), 6),
                     "share_of_served": round(int(m.sum()) / max(total_slots, 1), 6),
                     "share_of_hits": round(h / total_hits, 6) if total_hits else 0.0,
                     "hits@10": int(hits[m & top10].sum())}
    return out


def _light_batches(engine) -> dict[str, int]:
    """Source batches each side's trained light ranker has ordered so far (0 where none is loaded)."""
    return {side: getattr(engine.state.light_ranker(side), "batches", 0)
            for side in ("in_network", "out_of_network")}


def _score_hist(p: np.ndarray, y: np.ndarray, bins: int = 30) -> dict[str, Any]:
    edges = np.logspace(-5, 0, bins + 1)
    p = np.clip(p, edges[0], 1.0)
    return {"what": "predicted P(engaged) of our served items, by test-window outcome",
            "edges": [float(e) for e in edges],
            "engaged": np.histogram(p[y], edges)[0].tolist(), "not_engaged": np.histogram(p[~y], edges)[0].tolist()}


def _registry_heads(state: Path | None) -> dict[str, Any]:
    """Per-head test metrics the registry stored for the promoted heavy ranker (with ceiling AUC)."""
    from foryou.data.state import models_dir
    from foryou.registry import ModelRegistry, RegistryError

    if state is None:
        return {}
    try:
        mv = ModelRegistry(models_dir(state)).promoted("heavy_ranker")
    except (RegistryError, OSError):
        return {}
    if mv is None:
        return {}
    test = mv.metrics.get("test", {})
    return {"version": mv.version, "per_head": {h: {k: m.get(k) for k in ("auc", "ceiling_auc", "rce", "ece")}
                                                for h, m in test.items()}}


def _oracle(path: Path, dataset: Dataset, split: EvalSplit, engine, lists: dict[str, np.ndarray], pages: Pages,
            idx: np.ndarray,
            progress: Progress) -> tuple[dict[str, Any], dict[str, Any]]:
    from foryou.data.world.truth import GroundTruth
    from foryou.eval.oracle import page_utilities

    truth = GroundTruth.load(path)
    cands: list[tuple[np.ndarray, np.ndarray]] = []
    for lo in range(0, len(split.users), 256):  # batches through the funnel, with progress between them
        cands += candidates(engine, split.users[lo:lo + 256], split.as_of, pages.post_id.shape[1])
        progress("our candidates", len(cands) / len(split.users))
    progress("our candidates", 1.0)
    util = page_utilities(truth, split, lists, cands, _stage(progress, "oracle pages"))
    out: dict[str, Any] = {"what": "Σ expected utility of each list ÷ Σ that of the oracle page of the same length "
                   "(same user, same time; posts not yet shown to the user)", "methods": {}}
    for name, u in util.items():
        out["methods"][name] = {"ratio": _summary(u["served"], idx, u["oracle"]),
                                "served_per_user": round(float(u["served"].mean()), 4),
                                "oracle_per_user": round(float(u["oracle"].mean()), 4),
                                "mean_length": round(float(u["length"].mean()), 2)}
    out["candidates_per_user"] = round(float(np.mean([len(c) for c, _ in cands])), 1)
    # Calibration and per-head AUC of our served items against the true probabilities.
    valid = pages.post_id >= 0
    uid = np.broadcast_to(split.users[:, None], valid.shape)[valid]
    true = truth.probabilities(uid, pages.post_id[valid], np.int64(split.as_of))
    true["negative_feedback"] = 1 - np.prod([1 - true[k] for k in NEGATIVE_FEEDBACK], axis=0)
    calib = {}
    for h in CALIBRATION_HEADS:
        pred = pages.predictions[h][valid]
        calib[h] = {**M.calibration_curve(true[h], pred), "ece": round(M.calibration_error(true[h], pred), 6)}
    heads = _served_head_auc(dataset, split, pages, valid, true)
    return out, {"calibration": calib, "heads": heads}


def _served_head_auc(dataset: Dataset, split: EvalSplit, pages: Pages, valid: np.ndarray,
                     true: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per head on our served items: AUC of the prediction and of the true probability against
    whether the user did that action on the post in the test window."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from foryou.data.split import Window

    e = Window("test", split.as_of, None).rows(dataset, "engagements")
    kinds = {"negative_feedback": NEGATIVE_FEEDBACK}
    key = np.broadcast_to(split.users[:, None], valid.shape)[valid].astype(np.int64) * (1 << 32) + pages.post_id[valid]
    out = {}
    for head in ("click", "like", "repost", "reply", "profile_click", "dwell", "negative_feedback"):
        ev = e.filter(pc.is_in(e["kind"], pa.array(list(kinds.get(head, (head,))))))
        y = np.isin(key, ev["user_id"].to_numpy().astype(np.int64) * (1 << 32) + ev["post_id"].to_numpy())
        if y.sum() < 10:
            continue
        out[head] = {"positives": int(y.sum()), "auc": round(M.auc(y, pages.predictions[head][valid]), 4),
                     "truth_auc": round(M.auc(y, true[head]), 4)}
    return out


def _overrides(config: ForYouConfig) -> dict[str, Any]:
    default = ForYouConfig().model_dump()
    now = config.model_dump()

    def diff(a: dict, b: dict, prefix: str = "") -> dict[str, Any]:
        out = {}
        for k, v in b.items():
            if isinstance(v, dict):
                out.update(diff(a.get(k, {}), v, f"{prefix}{k}."))
            elif a.get(k) != v:
                out[f"{prefix}{k}"] = v
        return out

    return diff(default, now)


def _notes(baselines: tuple[str, ...]) -> list[str]:
    notes = ["baselines rank the same catalog: posts known at the split that pass the engine's TooOldFilter "
             "(timeline.sources.max_age_hours); none lists a user's own, already shown or already engaged posts"]
    if baselines:
        notes.append("LightFM is not among the baselines: its source-only release does not build here")
    return notes


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    m = result["methods"]
    ours = m[SYSTEM]["ranking"]["ndcg@10"]
    others = {k: v["ranking"]["ndcg@10"] for k, v in m.items() if k != SYSTEM}
    out: dict[str, Any] = {}
    if others:
        best = max(others, key=lambda k: others[k]["mean"])
        out["best_baseline"] = best
        out["ndcg@10_over_best_baseline"] = round(ours["mean"] / others[best]["mean"], 4) \
            if others[best]["mean"] > 0 else None
        out["ndcg@10_intervals_clear_of_every_baseline"] = all(ours["lo"] > v["hi"] for v in others.values())
    if "oracle" in result:
        out["oracle_ratio"] = result["oracle"]["methods"][SYSTEM]["ratio"]["mean"]
        out["oracle_ratio_at_least_0.9"] = out["oracle_ratio"] >= 0.9
    return out
