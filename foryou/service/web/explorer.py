"""The timeline explorer: pick a user, see their For You page as cards with "why" panels, act on a post and
watch the next page change, load more with the cursor, read the trace as a waterfall, and try config
overrides on this view only (with the page's diff before → after).

    GET /                                   the explorer (?user=ID opens a user)
    GET /ui/users?q=                        users whose id starts with q (the picker)
    GET /ui/timeline/{user}                 profile + page + trace (?overrides=key=value lines, ?cursor=, ?more=1)

Pages are ranked with the user's experiment arms, like their served page, but log no exposure: looking is
not an impression. Overrides are the `--set` syntax, validated against the config (an error is shown, not
served)."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse
from pydantic import ValidationError

from foryou.config import apply_overrides, merge_trees, parse_overrides
from foryou.service import cursor as cursors
from foryou.service.routes.deps import service
from foryou.service.schemas import ID_PATTERN
from foryou.service.service import Service
from foryou.service.web import feed
from foryou.service.web.pages import fragment, page
from foryou.timeline.engine import RecommendationEngine, UnknownUser

router = APIRouter(include_in_schema=False)
Svc = Annotated[Service, Depends(service)]
SUGGESTED = 8
MATCHES = 20


@router.get("/", response_class=HTMLResponse)
def explorer(request: Request, svc: Svc, user: Annotated[str | None, Query(max_length=64)] = None) -> HTMLResponse:
    return page(request, "explorer.html.j2", "explorer", svc, user=user, suggested=_suggested(svc.engine))


@router.get("/ui/users", response_class=HTMLResponse)
def users(svc: Svc, q: Annotated[str, Query(max_length=64)] = "") -> HTMLResponse:
    q = q.strip()
    shown = _shown_ids(svc.engine)
    hits = shown[np.char.startswith(shown, q)][:MATCHES].tolist() if q else _suggested(svc.engine)
    return fragment("_users.html.j2", users=hits, q=q)


@router.get("/ui/timeline/{user_id}", response_class=HTMLResponse)
def timeline(svc: Svc, user_id: Annotated[str, PathParam(pattern=ID_PATTERN)],
             n: Annotated[int, Query(ge=1, le=100)] = 10,
             cursor: Annotated[str | None, Query(max_length=cursors.MAX_CURSOR_CHARS)] = None,
             overrides: Annotated[str, Query(max_length=4000)] = "",
             more: bool = False) -> HTMLResponse:
    engine = svc.engine
    svc.catch_up()
    uid = engine.ids.users.one(user_id)
    if uid is None or not engine.user_exists(uid):
        return fragment("_error.html.j2", 404, message=f"unknown user {user_id}")
    try:
        served = cursors.decode(cursor)
        view = _parse(overrides, engine)
    except (cursors.BadCursor, ValueError) as exc:
        return fragment("_error.html.j2", 422, message=str(exc))
    arms_overrides, arms = svc.experiments.overrides_for(uid)
    now = svc.clock() + 1
    try:
        resp = engine.recommend(uid, n=n, explain=True, trace=not more, now=now, exclude=served,
                                overrides=merge_trees(arms_overrides, view) or None)
    except UnknownUser:
        return fragment("_error.html.j2", 404, message=f"unknown user {user_id}")
    context: dict[str, Any] = {
        "user_id": user_id, "n": n, "overrides": overrides, "arms": arms,
        "cards": feed.cards(engine, resp.items, now), "offset": len(served),
        "next_cursor": cursors.encode(served | {it.post_id for it in resp.items}),
        "models": resp.models, "sources": resp.sources, "cold_start": resp.cold_start,
    }
    if more:
        return fragment("_cards.html.j2", **context)
    diff = None
    if view:  # the same page without this view's overrides
        base = engine.recommend(uid, n=n, now=now, exclude=served, overrides=arms_overrides or None)
        diff = feed.page_diff([engine.ids.posts.show(it.post_id) for it in base.items],
                              [c["post_id"] for c in context["cards"]])
    return fragment("_timeline.html.j2", **context, profile=feed.profile(engine, uid, now),
                    trace=feed.waterfall(resp.trace), diff=diff)


def _parse(text: str, engine: RecommendationEngine) -> dict[str, Any]:
    """`key=value` lines (`foryou … --set` syntax) → an override tree, checked against the config."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        return {}
    tree = parse_overrides(lines)
    try:
        apply_overrides(engine.config, tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"override {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return tree


@lru_cache(maxsize=4)
def _shown_ids(engine: RecommendationEngine) -> np.ndarray:
    """Every user's id as the platform shows it (strings, for prefix search)."""
    return np.array([str(u) for u in engine.ids.users.json(engine.state.index.user_ids)])


@lru_cache(maxsize=4)
def _suggested(engine: RecommendationEngine) -> list[str]:
    """The users with the most follows (their pages have the most to show)."""
    idx = engine.state.index
    top = np.argsort(-idx.follows.out_degree(), kind="stable")[:SUGGESTED]
    return [str(u) for u in engine.ids.users.json(idx.user_ids[top])]
