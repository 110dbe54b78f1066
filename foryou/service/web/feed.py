"""What the timeline explorer shows, built from the engine's answers (no HTTP here): a user's profile,
their page as cards, the trace as a waterfall and the difference an override makes to the page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from foryou.data.lookup import member
from foryou.timeline.engine import RecommendationEngine
from foryou.timeline.page import TimelineItem
from foryou.vocab import ENGAGEMENT_KINDS, HOUR, POST_KINDS

RECENT = 8  # engagements listed on the profile
INTERESTS = 5  # topics listed on the profile


def profile(engine: RecommendationEngine, user_id: int, now: int) -> dict[str, Any]:
    """Follows, interests (positive engagements per topic) and the latest engagements, live ones included."""
    idx, ids = engine.state.index, engine.ids
    row = engine.user_row(user_id)
    view = engine.user_view(ids.users.show(user_id))
    topics = np.asarray(idx.user_topic[row], np.float64)
    top = np.argsort(-topics, kind="stable")[:INTERESTS]
    total = max(float(topics.sum()), 1.0)
    interests = [{"topic": int(t), "share": float(topics[t] / total)} for t in top if topics[t] > 0]
    posts, actions, _, times = engine.state.store.sequences.window(np.array([row]), now + 1, RECENT)
    recent = []
    for p, a, t in zip(posts[0][::-1].tolist(), actions[0][::-1].tolist(), times[0][::-1].tolist(), strict=True):
        if p < 0:
            continue
        recent.append({"post_id": ids.posts.show(int(idx.post_id[p])),
                       "author_id": ids.users.show(int(idx.user_ids[idx.author_row[p]])),
                       "topic": int(idx.topic[p]), "age_h": max(now - t, 0) / HOUR,
                       "kinds": [k for i, k in enumerate(ENGAGEMENT_KINDS) if a >> i & 1]})
    return {**view, "interests": interests, "recent": recent}


def cards(engine: RecommendationEngine, items: Sequence[TimelineItem], now: int) -> list[dict[str, Any]]:
    """One card per post: what it is (author, topic, kind, media/link, age), where it came from and why it
    ranks where it does (the explanation, heads sorted by how much they moved the score)."""
    if not items:
        return []
    idx, ids = engine.state.index, engine.ids
    found, rows = member(idx.post_id, np.array([it.post_id for it in items], np.int64))
    out = []
    for it, ok, r in zip(items, found.tolist(), rows.tolist(), strict=True):
        why = dict(it.explanation or {})
        if "heads" in why:
            why["heads"] = sorted(why["heads"].items(), key=lambda kv: -abs(kv[1]["contribution"]))
        out.append({"rank": it.rank, "post_id": ids.posts.show(it.post_id), "author_id": ids.users.show(it.author_id),
                    "topic": int(idx.topic[r]) if ok else None, "kind": POST_KINDS[int(idx.kind[r])] if ok else "new",
                    "has_media": bool(ok and idx.has_media[r]), "has_link": bool(ok and idx.has_link[r]),
                    "age_h": max(now - it.created_at, 0) / HOUR, "source": it.source,
                    "in_network": bool(it.in_network), "network_reason": it.network_reason,
                    "liked_by": [ids.users.show(u) for u in it.liked_by], "score": it.score, "why": why})
    return out


def waterfall(trace: dict[str, Any] | None) -> dict[str, Any]:
    """The trace's steps as bars on one time axis: top-level steps one after another, each candidate
    pipeline's own steps laid out inside its span (they ran before its summary step was recorded)."""
    steps = (trace or {}).get("steps", [])
    rows: list[dict[str, Any]] = []
    inner: list[dict[str, Any]] = []
    t = 0.0
    for s in steps:
        row = {k: s.get(k) for k in ("kind", "name", "n_in", "n_out", "removed", "reason", "error", "pipeline")}
        row["ms"] = float(s.get("duration_ms") or 0.0)
        if s.get("pipeline") is not None:  # a step inside a candidate pipeline
            inner.append(row)
            continue
        row["start"] = t
        rows.append(row)
        u = t
        for sub in inner:  # this pipeline's steps, placed inside its span
            sub["start"] = u
            u += sub["ms"]
            rows.append(sub)
        inner = []
        t += row["ms"]
    total = max(t, 1e-9)
    for row in rows:
        row["left"] = 100 * row["start"] / total
        row["width"] = max(100 * row["ms"] / total, 0.3)
    return {"rows": rows, "total_ms": t}


def page_diff(before: Sequence[Any], after: Sequence[Any]) -> dict[str, Any]:
    """How the page changed: each post of `after` with its rank before (None: new on the page), and the
    posts that left it."""
    was = {p: i + 1 for i, p in enumerate(before)}
    now = set(after)
    moves = [{"post_id": p, "rank": i + 1, "before": was.get(p)} for i, p in enumerate(after)]
    return {"moves": moves, "left": [p for p in before if p not in now],
            "changed": list(before) != list(after)}
