"""The engine's time windows (and, for data without impressions, its utility weights), derived from the
dataset unless the config sets them.

The defaults (`timeline.sources.*_hours`, `simclusters.half_life_hours`) are tuned for a feed, where posts
are engaged with for hours. A catalog (movies, artists: engaged with for months) gets windows scaled to its
learned engagement-age distribution (the manifest's `time_scale`, foryou.data.timescale). A feed keeps the
defaults exactly. A window the config sets (`--set`, a config file) always wins, and
`timeline.sources.windows=fixed` keeps every configured number.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from pathlib import Path

from foryou.config import HOURS_MAX, EngagementWeights, ForYouConfig
from foryou.data.manifest import Manifest, TimeScale, read_manifest
from foryou.data.timescale import time_scale_of_dir
from foryou.vocab import NEGATIVE_FEEDBACK, RANKER_HEADS

# candidate windows (post age): every engaged post of a catalog must still be servable
AGE_WINDOWS = ("max_age_hours", "in_network_hours", "in_network_hours_light", "trending_hours", "uteg_hours")
AGE_MARGIN = 2.0  # × the p99 engagement age
SMALL_CATALOG = 10  # pages: a servable catalog below this many pages is reported


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


def resolve_for(path: str | Path, config: ForYouConfig | None = None) -> ForYouConfig:
    """`config` (default: the defaults) with the windows of the dataset at `path`."""
    path = Path(path)
    return resolve_windows(config or ForYouConfig(), scale_of(read_manifest(path), path))


def small_catalog_note(servable: int, page_size: int, max_age_hours: float) -> str | None:
    """One line when fewer than SMALL_CATALOG pages of posts can be served, with the cause."""
    if servable >= SMALL_CATALOG * page_size:
        return None
    posts = f"{servable:,} post{'' if servable == 1 else 's'}"
    return (f"note: only {posts} can be served (created within timeline.sources.max_age_hours = "
            f"{max_age_hours:g} h), fewer than {SMALL_CATALOG}× the page size ({page_size}): pages may be short "
            "and metrics noisy — a small catalog, or posts older than the window")
