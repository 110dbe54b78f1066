"""`recommend_many` against one `recommend` call per user: the same users, the same instant, in one run.

Each round times both ways on the same users (sequential first, then batched, so both see the same
machine load); the result gives the median of the rounds and the speed-up of the medians, plus how
many batched pages equal the sequential ones (the heavy ranker's float rounding can differ between
batch sizes, so a tie may break the other way)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from foryou.bench.offline import machine, peak_rss_mb
from foryou.config import ForYouConfig
from foryou.logs import Progress


def bench_batch(dataset: Path, users: int = 1000, n: int = 35, config: ForYouConfig | None = None,
                progress: Progress | None = None, rounds: int = 3, seed: int = 0) -> dict[str, Any]:
    """Wall time of `users` × `recommend` vs one `recommend_many` over the same users (one thread)."""
    from foryou.timeline.engine import RecommendationEngine

    progress = progress or (lambda stage, frac: None)
    progress("open engine", 0.0)
    engine = RecommendationEngine.open(dataset, config)
    progress("open engine", 1.0)
    ids = engine.user_ids
    chosen = np.random.default_rng(seed).choice(ids, size=min(users, len(ids)), replace=False).astype(np.int64)
    now = int(engine.now)
    for u in chosen[:20]:  # warm-up: first-touch page faults, lazy imports, the ONNX session
        engine.recommend(int(u), n=n, now=now)
    engine.recommend_many(chosen[:20], n=n, now=now)
    one_s, many_s = [], []
    sequential: list[list[int]] = []
    for r in range(rounds):
        t0 = time.perf_counter()
        sequential = [[it.post_id for it in engine.recommend(int(u), n=n, now=now).items] for u in chosen]
        one_s.append(time.perf_counter() - t0)
        progress("rounds", (r + 0.5) / rounds)
        t0 = time.perf_counter()
        batch = engine.recommend_many(chosen, n=n, now=now)
        many_s.append(time.perf_counter() - t0)
        progress("rounds", (r + 1) / rounds)
    same = [batch.post_id[i, :batch.lengths[i]].tolist() == sequential[i] for i in range(len(chosen))]
    overlap = [len(set(batch.post_id[i, :batch.lengths[i]].tolist()) & set(sequential[i])) / max(len(sequential[i]), 1)
               for i in range(len(chosen))]
    models = engine.model_versions()
    engine.close()
    one, many = statistics.median(one_s), statistics.median(many_s)
    return {
        "bench": "batch", "dataset": str(dataset), "users": len(chosen), "n": n, "rounds": rounds,
        "recommend_s": {"median": round(one, 3), "rounds": [round(x, 3) for x in one_s]},
        "recommend_many_s": {"median": round(many, 3), "rounds": [round(x, 3) for x in many_s]},
        "per_user_ms": {"recommend": round(one * 1000 / len(chosen), 3),
                        "recommend_many": round(many * 1000 / len(chosen), 3)},
        "speedup": round(one / many, 2) if many else None,
        "pages_identical_share": round(float(np.mean(same)), 4),
        "page_overlap_mean": round(float(np.mean(overlap)), 4),
        "users_per_pass": engine.config.timeline.batch.users_per_pass,
        "models": models, "peak_rss_mb": peak_rss_mb(), "machine": machine(),
    }
