"""Benchmarks behind `foryou bench ...`: each returns a JSON-able dict with machine facts."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from foryou.config import world_config
from foryou.data.importers import IMPORTERS
from foryou.data.importers.higgs import FILE as HIGGS_FILE
from foryou.data.validate import validate_dir
from foryou.data.world import generate_world
from foryou.errors import ForYouError

if TYPE_CHECKING:
    from foryou.config import ForYouConfig, WorldPreset

# A file only each source's published archive holds: a folder is recognised by it, whatever its name, so no
# machine's folder names are assumed.
SIGNATURES = {"minirecsys": "tweets.parquet", "lastfm": "user_artists.dat", "higgs": HIGGS_FILE,
              "movielens": "u.data"}


def machine() -> dict[str, Any]:
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "platform": platform.platform(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.machine()}


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


SCRATCH = Path("runs")  # benchmarks write their datasets under here (the same disk as real runs) ...


@contextmanager
def scratch_dir(prefix: str) -> Iterator[Path]:
    """... in a fresh directory removed afterwards: a benchmark never replaces anyone's dataset."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f".{prefix}-", dir=SCRATCH))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def bench_world(preset: WorldPreset, seed: int, out: Path | None = None) -> dict[str, Any]:
    """Generate and write a world, timed; kept at `out` (the caller checks what is there), else written to a
    scratch directory and removed."""
    t0 = time.perf_counter()
    world = generate_world(world_config(preset), seed, preset=preset)
    generated = time.perf_counter() - t0
    if out is None:
        with scratch_dir("bench-world") as scratch:
            world.write(scratch / "world")
            total = time.perf_counter() - t0
    else:
        world.write(out)
        total = time.perf_counter() - t0
    m = world.dataset.manifest
    return {"bench": "world", "preset": preset, "seed": seed, "generate_s": round(generated, 2),
            "generate_and_write_s": round(total, 2), "peak_rss_mb": peak_rss_mb(),
            "counts": m.counts, "signal": m.signal, "machine": machine()}


def find_real_datasets(root: Path) -> dict[str, Path]:
    """Each source's folder: `root` itself or a folder in it holding the source's signature file. A source
    with no such folder is left out (the caller says so)."""
    folders = [root, *sorted(p for p in root.iterdir() if p.is_dir())]
    found = {}
    for name, signature in SIGNATURES.items():
        folder = next((f for f in folders if (f / signature).is_file()), None)
        if folder is not None:
            found[name] = folder
    return found


def bench_imports(sources: Mapping[str, Path]) -> dict[str, Any]:
    """Import, write and validate each real dataset (source name → its folder), timed; written to a scratch
    directory and removed (`foryou import` is what keeps an import)."""
    results: dict[str, Any] = {}
    for name, src in sources.items():
        t0 = time.perf_counter()
        dataset = IMPORTERS[name](src)
        imported = time.perf_counter() - t0
        with scratch_dir(f"bench-import-{name}") as scratch:
            dataset.write(scratch / name)
            problems = validate_dir(scratch / name)
            total = time.perf_counter() - t0
        results[name] = {"import_s": round(imported, 2), "import_and_write_s": round(total, 2),
                         "valid": not problems, "counts": dataset.manifest.counts}
    return {"bench": "import", "datasets": results, "peak_rss_mb": peak_rss_mb(), "machine": machine()}


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    import numpy as np

    a = np.asarray(values, dtype=np.float64)
    return {f"p{q}": round(float(np.percentile(a, q)), 3) for q in (50, 95, 99)} if len(a) else {}


def bench_timeline(dataset: Path, users: int, seed: int, progress: Callable[[str, float], None] | None = None,
                   config: ForYouConfig | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Latency of `recommend` for random users, one request at a time on one thread."""
    import numpy as np

    from foryou.timeline.engine import RecommendationEngine

    progress = progress or (lambda stage, frac: None)
    progress("build engine", 0.0)
    t0 = time.perf_counter()
    engine = RecommendationEngine.open(dataset, config)
    build_s = time.perf_counter() - t0
    progress("build engine", 1.0)
    ids = engine.user_ids
    chosen = np.random.default_rng(seed).choice(ids, size=min(users, len(ids)), replace=False)
    for u in chosen[:20]:  # warm-up: first-touch page faults, lazy imports
        engine.recommend(int(u))
    totals, sizes, cold = [], [], 0
    steps: dict[str, list[float]] = {}
    sources: dict[str, list[int]] = {}
    for i, u in enumerate(chosen):
        page = engine.recommend(int(u))
        totals.append(page.timings_ms["total"])
        for k, v in page.timings_ms.items():
            if "/" not in k and k != "total":
                steps.setdefault(k, []).append(v)
        for k, v in page.sources.items():
            sources.setdefault(k, []).append(v)
        sizes.append(len(page.items))
        cold += page.cold_start
        if i % 50 == 0:
            progress("requests", i / len(chosen))
    progress("requests", 1.0)
    engine.close()
    return {
        "bench": "timeline", "dataset": str(dataset), "users": len(chosen), "config_overrides": overrides or [],
        "engine_open_s": round(build_s, 2), "from_snapshot": getattr(engine, "loaded_from", None) is not None,
        "request_ms": _percentiles(totals),
        "candidates_per_source_mean": {k: round(float(np.mean(v)), 1) for k, v in sources.items()},
        "candidates_total_mean": round(float(np.sum([np.mean(v) for v in sources.values()])), 1),
        "posts_per_page": {"mean": round(float(np.mean(sizes)), 2), "min": int(np.min(sizes))},
        "cold_start_users": int(cold),
        "steps_ms": {k: _percentiles(v) for k, v in steps.items()},
        "peak_rss_mb": peak_rss_mb(), "machine": machine(),
    }


def bench_ranker(dataset: Path, candidates: int = 500, repeats: int = 300,
                 compare_int8: bool = False, compare_onnx: bool = False) -> dict[str, Any]:
    """The promoted heavy ranker on `candidates` rows, one thread: feature hydration and inference;
    optionally beside its dynamic-int8 and ONNX Runtime variants (test-window AUC and latency)."""
    import numpy as np
    import torch

    from foryou.timeline.engine import RecommendationEngine
    from foryou.timeline.loading import TrainedHeavyRanker

    engine = RecommendationEngine.open(dataset)
    model = engine.state.heavy_ranker()
    if not isinstance(model, TrainedHeavyRanker):  # none promoted (or unloadable: the heuristic serves)
        engine.close()
        raise ForYouError(f"{dataset}: no promoted heavy ranker ({engine.model_status['heavy_ranker']}); "
                         "run `foryou train` first")
    torch.set_num_threads(1)
    store, net = model.store, model.net
    rng = np.random.default_rng(0)
    feats, infer = [], []
    with torch.inference_mode():
        for i in range(repeats + 20):
            rows = rng.choice(len(store.post_id), candidates, replace=False)
            user = rng.integers(len(store.user_ids))
            t0 = time.perf_counter()
            x = store.compute(np.full(candidates, user), rows, engine.now)
            t1 = time.perf_counter()
            ids = net.vocab_index(np.stack([np.full(candidates, store.user_ids[user]),
                                            store.user_ids[store.author_row[rows]]], 1))
            if model.runtime is not None:  # what the engine serves with
                model.runtime(x, store.topic[rows], ids)
            else:
                net(torch.from_numpy(x), torch.from_numpy(store.topic[rows]), torch.from_numpy(ids))
            t2 = time.perf_counter()
            if i >= 20:
                feats.append((t1 - t0) * 1000)
                infer.append((t2 - t1) * 1000)
    engine.close()
    result = {"bench": "ranker", "dataset": str(dataset), "model": model.version, "candidates": candidates,
              "threads": 1, "runtime": "onnx" if model.runtime is not None else "torch",
              "features_ms": _percentiles(feats), "inference_ms": _percentiles(infer),
              "machine": machine()}
    if compare_int8 or compare_onnx:
        result["runtimes"] = _runtime_comparison(dataset, store, net, candidates, compare_int8, compare_onnx)
    return result


def _runtime_comparison(dataset: Path, store, net, candidates: int, int8: bool, onnx: bool) -> dict[str, Any]:
    """Eager fp32 beside dynamic int8 (Linear layers) and/or ONNX Runtime: test-window AUC per head
    and single-thread latency on `candidates` rows, measured interleaved in one run."""
    import warnings

    import numpy as np
    import torch

    from foryou.data.dataset import Dataset
    from foryou.training.heavy_ranker import build_rows, split_windows
    from foryou.training.metrics import auc

    def torch_runner(module):
        def run(x: np.ndarray, topic: np.ndarray, ids: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return module(torch.from_numpy(x), torch.from_numpy(topic), torch.from_numpy(ids)).numpy()
        return run

    runners = {"fp32": torch_runner(net)}
    if int8:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's deprecation notice for the eager quantisation API
            runners["int8"] = torch_runner(torch.ao.quantization.quantize_dynamic(net, {torch.nn.Linear},
                                                                                   dtype=torch.qint8))
    if onnx:
        from foryou.models.export import OnnxHeavyRanker, to_onnx

        runners["onnx"] = OnnxHeavyRanker(to_onnx(net), threads=1)
    ds = Dataset.load(dataset, validate=False)
    test = build_rows(ds, store, split_windows(ds)[2])
    ids = net.vocab_index(test.ids)
    x, t, i_ = test.x[:candidates], test.topic[:candidates], ids[:candidates]
    times: dict[str, list[float]] = {name: [] for name in runners}
    for i in range(330):
        for name, run in runners.items():  # interleaved: machine noise hits every runtime alike
            t0 = time.perf_counter()
            run(x, t, i_)
            if i >= 30:
                times[name].append((time.perf_counter() - t0) * 1000)
    out: dict[str, Any] = {}
    for name, run in runners.items():
        p = np.concatenate([run(test.x[i:i + 65_536], test.topic[i:i + 65_536], ids[i:i + 65_536])
                            for i in range(0, len(test), 65_536)])
        out[name] = {"auc": {h: round(auc(test.y[:, j], p[:, j]), 4) for j, h in enumerate(net.heads)},
                     "inference_ms": _percentiles(times[name])}
    return out


def bench_phoenix(dataset: Path, candidates: int = 500, repeats: int = 200) -> dict[str, Any]:
    """The promoted Phoenix on one request's `candidates`, one thread: building its inputs (history window and
    candidate context from the feature store) and inference — ONNX Runtime (as served) and eager torch,
    interleaved in one run — beside MaskNet's feature hydration and inference where one is promoted; with
    parameters and FLOPs per request."""
    import numpy as np
    import torch

    from foryou.config import ForYouConfig, apply_overrides
    from foryou.timeline.engine import RecommendationEngine
    from foryou.timeline.loading import TrainedHeavyRanker, TrainedPhoenix
    from foryou.training.phoenix import inputs

    engine = RecommendationEngine.open(dataset, apply_overrides(ForYouConfig(), {"timeline": {"ranking": {
        "model": "phoenix"}}}))
    model = engine.state.heavy_ranker()
    if not isinstance(model, TrainedPhoenix):
        engine.close()
        raise ForYouError(f"{dataset}: no promoted Phoenix ({engine.model_status.get('phoenix')}); "
                          "run `foryou train` first")
    masknet = engine.state.models.get("heavy_ranker")
    torch.set_num_threads(1)
    store, net = model.store, model.model
    rng = np.random.default_rng(0)
    timings: dict[str, list[float]] = {"inputs_ms": [], "onnx_ms": [], "eager_ms": [], "masknet_features_ms": [],
                                       "masknet_inference_ms": []}
    with torch.inference_mode():
        for i in range(repeats + 20):
            rows = rng.choice(len(store.post_id), candidates, replace=False)
            user = int(rng.integers(len(store.user_ids)))
            t0 = time.perf_counter()
            x = inputs(store, np.array([user]), np.array([engine.now]), rows[None, :], model.history, model.context,
                       model.trend_s, model.known_until)
            t1 = time.perf_counter()
            if model.runtime is not None:
                model.runtime(*x.numpy())
            t2 = time.perf_counter()
            net.probabilities(*x.tensors())
            t3 = time.perf_counter()
            laps = {"inputs_ms": t1 - t0, "onnx_ms": t2 - t1, "eager_ms": t3 - t2}
            if isinstance(masknet, TrainedHeavyRanker):
                feats = store.compute(np.full(candidates, user), rows, engine.now)
                t4 = time.perf_counter()
                masknet._run(feats, store.topic[rows], masknet.net.vocab_index(np.stack(
                    [np.full(candidates, store.user_ids[user]), store.user_ids[store.author_row[rows]]], 1)))
                t5 = time.perf_counter()
                store.compute(np.full(candidates, user), rows, engine.now)
                laps |= {"masknet_features_ms": time.perf_counter() - t5, "masknet_inference_ms": t5 - t4}
            if i >= 20:
                for key, seconds in laps.items():
                    timings[key].append(seconds * 1000)
    engine.close()
    return {"bench": "phoenix", "dataset": str(dataset), "model": model.version, "candidates": candidates,
            "history": model.history, "threads": 1, **{k: _percentiles(v) for k, v in timings.items() if v},
            "parameters": sum(p.numel() for p in net.parameters()),
            "dense_parameters": sum(p.numel() for n, p in net.named_parameters() if not n.endswith("table.weight")),
            "mflop_per_request": round(_phoenix_flops(net, model.history + 1, candidates) / 1e6, 1),
            "masknet": getattr(masknet, "version", None), "machine": machine()}


def _phoenix_flops(net: Any, context: int, candidates: int) -> float:
    """Multiply-adds × 2 of one request: every context and candidate token through each layer's projections and
    feed-forward, the context's attention over itself once, each candidate's over the context plus itself."""
    d, heads, hd = net.norm.weight.shape[0], net.blocks[0].heads, net.head_dim
    ffn = net.blocks[0].ffn[0].out_features
    per_token = 2 * (3 * d * heads * hd + heads * hd * d + 2 * d * ffn)
    attention = 2 * 2 * heads * hd * (context * context + candidates * (context + 1))
    return float(len(net.blocks) * ((context + candidates) * per_token + attention))
