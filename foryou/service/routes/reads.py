"""Reads: the For You page, posts, users."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi import Path as PathParam

from foryou.service.cursor import CURSOR_PATTERN, MAX_CURSOR_CHARS, BadCursor
from foryou.service.ratelimit import limit_timeline_reads
from foryou.service.routes.deps import ORJSONResponse, errors, request_id, service
from foryou.service.schemas import ID_FORMAT, ID_PATTERN, PostOut, TimelinePage, UserOut
from foryou.service.service import Service
from foryou.timeline.engine import UnknownPost, UnknownUser

router = APIRouter(prefix="/v1", tags=["reads"])
UserId = Annotated[str, PathParam(pattern=ID_PATTERN, json_schema_extra=ID_FORMAT,
                                  description="user id: the platform's own (an int on datasets with int ids)")]
PostId = Annotated[str, PathParam(pattern=ID_PATTERN, json_schema_extra=ID_FORMAT,
                                  description="post id: the platform's own (an int on datasets with int ids)")]
NOT_FOUND = errors(404, 422)


@router.get("/users/{user_id}/timeline", response_model=None, summary="The For You page",
            responses={200: {"model": TimelinePage}, **NOT_FOUND, **errors(429, 503)},
            dependencies=[Depends(limit_timeline_reads)])
async def timeline(user_id: UserId, svc: Annotated[Service, Depends(service)],
                   rid: Annotated[str, Depends(request_id)],
                   n: Annotated[int | None, Query(ge=1, le=1000, description="posts on the page (default "
                                                  "`timeline.mixing.page_size`, 35); the server returns at most "
                                                  "`service.max_page` (200)")] = None,
                   cursor: Annotated[str | None, Query(
                       max_length=MAX_CURSOR_CHARS, pattern=CURSOR_PATTERN, json_schema_extra={"format": "cursor"},
                       description="opaque: the `cursor` of the previous page, as it came (a forged or damaged "
                                   "one is answered 422)")] = None,
                   explain: Annotated[bool, Query(description="every head × weight and factor per post")] = False,
                   ) -> ORJSONResponse:
    n = min(n or svc.config.timeline.mixing.page_size, svc.config.service.max_page)
    try:
        # A cache hit is served here on the event loop; a miss (~10-20 ms of ranking) runs in the
        # threadpool so the hits queued behind it in this worker are not held up, if admission control
        # admits it (else 503 with Retry-After at once: foryou.service.admission).
        page = svc.timeline_cached(user_id, n=n, cursor=cursor, explain=explain, request_id=rid)
        if page is None:
            page = await svc.admission.run(svc.timeline, user_id, n=n, cursor=cursor, explain=explain,
                                           request_id=rid)
    except UnknownUser as exc:
        raise HTTPException(404, str(exc)) from None
    except BadCursor as exc:
        raise HTTPException(422, str(exc)) from None
    return ORJSONResponse(page, headers={"x-request-id": rid})


@router.get("/posts/{post_id}", response_model=None, responses={200: {"model": PostOut}, **NOT_FOUND},
            summary="A post with its live counters")
async def get_post(post_id: PostId,
                   svc: Annotated[Service, Depends(service)]) -> ORJSONResponse:
    try:
        return ORJSONResponse(svc.post(post_id))
    except UnknownPost as exc:
        raise HTTPException(404, str(exc)) from None


@router.get("/users/{user_id}", response_model=None, responses={200: {"model": UserOut}, **NOT_FOUND},
            summary="An account")
async def get_user(user_id: UserId, svc: Annotated[Service, Depends(service)]) -> ORJSONResponse:
    try:
        return ORJSONResponse(svc.user(user_id))
    except UnknownUser as exc:
        raise HTTPException(404, str(exc)) from None
