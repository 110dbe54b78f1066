"""The engine's time windows (and, for data without impressions, its utility weights), derived from the
dataset unless the config sets them, and what `foryou train` learned for the heuristics.

The defaults (`timeline.sources.*_hours`, `simclusters.half_life_hours`) are tuned for a feed, where posts
are engaged with for hours. A catalog (movies, artists: engaged with for months) gets windows scaled to its
learned engagement-age distribution (the manifest's `time_scale`, foryou.data.timescale). A feed keeps the
defaults exactly. A window the config sets (`--set`, a config file) always wins, and
`timeline.sources.windows=fixed` keeps every configured number.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

from foryou.config import HOURS_MAX, EngagementWeights, ForYouConfig, PositivesOnlyHeuristicConfig
from foryou.data.manifest import Manifest, TimeScale, read_manifest
from foryou.data.state import models_dir, state_dir
from foryou.data.timescale import time_scale_of_dir
from foryou.registry import ModelRegistry, RegistryError
from foryou.vocab import NEGATIVE_FEEDBACK, RANKER_HEADS

log = logging.getLogger("foryou.timeline")

# candidate windows (post age): every engaged post of a catalog must still be servable
AGE_WINDOWS = ("max_age_hours", "in_network_hours", "in_network_hours_light", "trending_hours", "uteg_hours")
AGE_MARGIN = 2.0  # × the p99 engagement age
SMALL_CATALOG = 10  # pages: a servable catalog below this many pages is reported
# what `foryou train` learns for the heuristics on the validation window (foryou.eval.heuristic), kept in the
# registry: the trending window and the positives-only interest logit's weights
LEARNED_HEURISTIC = "heuristic"
LEARNABLE = ("trending_count_hours", "trending_counts")
WEIGHTS = tuple(PositivesOnlyHeuristicConfig.model_fields)


def _hours(value: float) -> float:
    return float(min(HOURS_MAX, math.ceil(value)))


def derived_windows(config: ForYouConfig, scale: TimeScale) -> dict[str, dict[str, float]]:
    """The catalog windows for `scale` (each at least its feed default): section → field → hours."""
    src, sc = config.timeline.sources, config.simclusters
    age = scale.age_p99_hours * AGE_MARGIN
    sources = {name: _hours(max(float(getattr(src, name)), age)) for name in AGE_WINDOWS}
    # popularity over the recent share of engagements, never finer than the timestamps' resolution
    count = max(src.trending_count_hours, scale.recent_hours, 2 * scale.resolution_hours)
    sources["trending_count_hours"] = _hours(count)
    return {"sources": sources, "simclusters": {"half_life_hours": _hours(max(sc.half_life_hours,
                                                                              scale.age_p50_hours / 2))}}


def resolve_windows(config: ForYouConfig, scale: TimeScale | None) -> ForYouConfig:
    """`config` with every window it does not set derived from `scale`: unchanged for a feed (or no
    scale), scaled for a catalog. Idempotent: derived windows count as set."""
    src = config.timeline.sources
    if scale is None or scale.kind != "catalog" or src.windows == "fixed":
        return config
    derived = derived_windows(config, scale)
    sources = {k: v for k, v in derived["sources"].items() if k not in src.model_fields_set}
    half_life = {k: v for k, v in derived["simclusters"].items() if k not in config.simclusters.model_fields_set}
    timeline = config.timeline.model_copy(update={"sources": src.model_copy(update=sources)})
    return config.model_copy(update={"timeline": timeline,
                                     "simclusters": config.simclusters.model_copy(update=half_life)})


def head_weights(weights: EngagementWeights, kinds: Collection[str], has_impressions: bool) -> EngagementWeights:
    """The utility weights for a dataset: X's, unless it logs no impressions. An imported kind is not X's
    head of that name (a MovieLens "click" is any rating, a "not_interested" a rating ≤ 2), so data without
    an impression log weighs each head it carries equally — +1 a positive, −1 the pooled negative feedback
    and report — and 0 a head no event feeds. Weights the config sets are kept as written."""
    if has_impressions or weights.model_fields_set:
        return weights
    present = set(kinds)
    pooled = {"negative_feedback": NEGATIVE_FEEDBACK}
    derived = {head: (-1.0 if head in ("negative_feedback", "report") else 1.0)
               if present & set(pooled.get(head, (head,))) else 0.0 for head in RANKER_HEADS}
    return EngagementWeights(**derived)


def scale_of(manifest: Manifest, path: Path | None) -> TimeScale | None:
    """The manifest's time scale, computed from the tables at `path` for an older manifest without one."""
    if manifest.time_scale is not None or path is None:
        return manifest.time_scale
    return time_scale_of_dir(path)


def resolve_for(path: str | Path, config: ForYouConfig | None = None, state: str | Path | None = None,
                learned: bool = True) -> ForYouConfig:
    """`config` (default: the defaults) with the windows of the dataset at `path`: the ones `foryou train`
    learned (promoted in the state directory's registry; `learned=False` skips them), then the derived ones."""
    path = Path(path)
    config = config or ForYouConfig()
    if learned:
        config = apply_learned(config, state_dir(path, state))
    return resolve_windows(config, scale_of(read_manifest(path), path))


def learned_heuristic(state: Path | None) -> dict[str, Any]:
    """What `foryou train` learned for the heuristics and promoted in a state directory: the trending window
    and what it counts (LEARNABLE) and, for data without impressions, `positives_only` (the interest logit's
    weights); {} when nothing is promoted or the entry cannot be read (logged: the derived windows serve)."""
    if state is None or not (models_dir(state) / LEARNED_HEURISTIC).is_dir():
        return {}
    try:
        version = ModelRegistry(models_dir(state)).promoted(LEARNED_HEURISTIC)
    except RegistryError as exc:
        log.warning("learned heuristic unreadable; deriving its windows", extra={"error": str(exc)})
        return {}
    cfg = version.config if version is not None else {}
    learned: dict[str, Any] = {}
    if isinstance(cfg.get("trending_count_hours"), int | float):
        learned["trending_count_hours"] = float(cfg["trending_count_hours"])
    if cfg.get("trending_counts") in ("positive", "engaged"):
        learned["trending_counts"] = cfg["trending_counts"]
    weights = cfg.get("positives_only")
    if isinstance(weights, dict):
        learned["positives_only"] = {k: float(v) for k, v in weights.items()
                                     if k in WEIGHTS and isinstance(v, int | float)}
    return learned


def apply_learned(config: ForYouConfig, state: Path | None) -> ForYouConfig:
    """`config` with the learned heuristic of `state` for the fields it does not set (a `--set` wins, and
    `timeline.sources.windows=fixed` keeps the configured windows)."""
    learned = learned_heuristic(state)
    src, heavy = config.timeline.sources, config.timeline.heuristics.heavy_ranker
    windows = {} if src.windows == "fixed" else \
        {k: v for k, v in learned.items() if k in LEARNABLE and k not in src.model_fields_set}
    weights = {k: v for k, v in learned.get("positives_only", {}).items()
               if k not in heavy.positives_only.model_fields_set}
    if not windows and not weights:
        return config
    heavy = heavy.model_copy(update={"positives_only": heavy.positives_only.model_copy(update=weights)})
    heuristics = config.timeline.heuristics.model_copy(update={"heavy_ranker": heavy})
    timeline = config.timeline.model_copy(update={"sources": src.model_copy(update=windows),
                                                  "heuristics": heuristics})
    return config.model_copy(update={"timeline": timeline})


def unresolved(config: ForYouConfig, path: str | Path, state: str | Path | None = None) -> ForYouConfig:
    """A resolved config (an engine's) without the learnable fields that hold what resolution alone gives
    them (learned or derived), so that they are learned again; a field set to another value stays set."""
    tree = config.model_dump(exclude_unset=True)
    sources = tree.get("timeline", {}).get("sources", {})
    weights = tree.get("timeline", {}).get("heuristics", {}).get("heavy_ranker", {}).get("positives_only", {})
    drop = [(sources, k) for k in LEARNABLE if k in sources] + [(weights, k) for k in WEIGHTS if k in weights]
    if not drop:
        return config
    for section, k in drop:
        section.pop(k)
    bare = ForYouConfig.model_validate(tree)
    again = resolve_for(path, bare, state)
    same = (all(getattr(again.timeline.sources, k) == getattr(config.timeline.sources, k) for k in LEARNABLE)
            and again.timeline.heuristics.heavy_ranker.positives_only
            == config.timeline.heuristics.heavy_ranker.positives_only)
    return bare if same else config


def heuristic_status(state: Path | None) -> str:
    """What the learned heuristic serves, for the model status: "v1 (promoted): trending 720 h; related 8"
    (the weights that moved from the defaults), or "derived (not learned)"."""
    learned = learned_heuristic(state)
    if not learned or state is None:
        return "derived (not learned)"
    version = ModelRegistry(models_dir(state)).promoted(LEARNED_HEURISTIC)
    default = PositivesOnlyHeuristicConfig()
    moved = [f"{k} {v:g}" for k, v in learned.get("positives_only", {}).items() if getattr(default, k) != v]
    window, counted = learned.get("trending_count_hours"), learned.get("trending_counts", "positive")
    parts = ([f"trending {window:g} h" + (" (every engagement)" if counted == "engaged" else "")]
             if window is not None else []) + moved
    return f"v{version.version if version else '?'} (promoted): {'; '.join(parts) or 'the defaults'}"


def small_catalog_note(servable: int, page_size: int, max_age_hours: float) -> str | None:
    """One line when fewer than SMALL_CATALOG pages of posts can be served, with the cause."""
    if servable >= SMALL_CATALOG * page_size:
        return None
    posts = f"{servable:,} post{'' if servable == 1 else 's'}"
    return (f"note: only {posts} can be served (created within timeline.sources.max_age_hours = "
            f"{max_age_hours:g} h), fewer than {SMALL_CATALOG}× the page size ({page_size}): pages may be short "
            "and metrics noisy — a small catalog, or posts older than the window")
