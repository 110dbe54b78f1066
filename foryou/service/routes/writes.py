"""Writes: engagements (one or a batch), posts, follows / unfollows / blocks / mutes. Each is
acknowledged only after it is committed to the event store (fsynced) and applied. The bearer token
is checked before any of this, for every state-changing route, by `security.WriteAuth`."""

from __future__ import annotations

import contextlib
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException

from foryou.service import metrics
from foryou.service.routes.deps import WRITE_ERRORS, ORJSONResponse, ORJSONRoute, errors, request_id, service
from foryou.service.schemas import EngagementBatch, EngagementIn, PostCreated, PostIn, RelationIn, WriteResult
from foryou.service.service import InvalidEvent, Service
from foryou.service.store import Event
from foryou.vocab import SAFETY_LABELS

router = APIRouter(prefix="/v1", tags=["writes"], route_class=ORJSONRoute)
ERRORS = errors(*WRITE_ERRORS)


async def _commit(svc: Service, events: list[Event], rid: str, route: str) -> list[tuple[Event, bool]]:
    t0 = time.perf_counter()
    try:
        acks = await svc.admission.run(svc.write, events)  # or Overloaded: 503, nothing stored
    except InvalidEvent as exc:
        if exc.status == 503:  # the store could not write (counted as store_unavailable): try again later
            raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from None
        metrics.ERRORS.labels("rejected_write").inc()
        raise HTTPException(exc.status, str(exc)) from None
    touched = list(dict.fromkeys(e.post_id for e, _ in acks[:100] if e.post_id is not None))
    counters = {}
    for pid in touched[:20]:
        with contextlib.suppress(KeyError):
            counters[str(pid)] = svc.post(pid)["counters"]
    svc.trace.write({"ts": round(time.time(), 3), "request_id": rid, "route": route,
                     "ms": round((time.perf_counter() - t0) * 1000, 3), "accepted": sum(not d for _, d in acks),
                     "events": [{"event_id": e.event_id, "seq": e.seq, "type": e.type, "kind": e.kind,
                                 "user_id": e.user_id, "post_id": e.post_id, "target_id": e.target_id,
                                 "duplicate": d} for e, d in acks[:100]],
                     "counters": counters})
    return acks


def _result(acks: list[tuple[Event, bool]]) -> dict:
    return {"accepted": sum(not d for _, d in acks), "duplicates": sum(d for _, d in acks),
            "last_seq": max((e.seq for e, _ in acks), default=0),
            "events": [{"event_id": e.event_id, "seq": e.seq, "duplicate": d} for e, d in acks]}


@router.post("/engagements", response_model=None, responses={200: {"model": WriteResult}, **ERRORS},
             summary="Record one engagement or a batch")
async def engagements(body: EngagementIn | EngagementBatch, svc: Annotated[Service, Depends(service)],
                      rid: Annotated[str, Depends(request_id)]) -> ORJSONResponse:
    items = body.events if isinstance(body, EngagementBatch) else [body]
    if len(items) > svc.config.service.max_batch:
        raise HTTPException(413, f"at most {svc.config.service.max_batch} events per request")
    t = svc.clock()  # one world time for the request
    try:
        events = svc.engagements([e.user_id for e in items], [e.post_id for e in items], [e.kind for e in items],
                                 [e.value for e in items], [e.event_id for e in items], t)
    except InvalidEvent as exc:
        raise HTTPException(exc.status, str(exc)) from None
    acks = await _commit(svc, events, rid, "engagements")
    return ORJSONResponse(_result(acks), headers={"x-request-id": rid})


@router.post("/posts", response_model=None, responses={200: {"model": PostCreated}, **ERRORS, **errors(409)},
             summary="Create a post (id assigned here)")
async def create_post(body: PostIn, svc: Annotated[Service, Depends(service)],
                      rid: Annotated[str, Depends(request_id)]) -> ORJSONResponse:
    try:
        event = svc.post_event(body.author_id, body.kind, body.event_id, post_id=body.post_id,
                               parent_id=getattr(body, "parent_id", None), topic=body.topic, has_media=body.has_media,
                               has_link=body.has_link, length=body.length,
                               **{lb: getattr(body, lb) for lb in SAFETY_LABELS})
    except InvalidEvent as exc:
        raise HTTPException(exc.status, str(exc)) from None
    (e, duplicate), = await _commit(svc, [event], rid, "posts")
    return ORJSONResponse({"post_id": svc.engine.ids.posts.show(int(e.post_id or 0)), "created_at": e.t,
                           "ack": {"event_id": e.event_id, "seq": e.seq, "duplicate": duplicate}},
                          headers={"x-request-id": rid})


@router.post("/follows", response_model=None, responses={200: {"model": WriteResult}, **ERRORS, **errors(409)},
             summary="Follow, unfollow, block, mute, unblock or unmute an account")
async def follows(body: RelationIn, svc: Annotated[Service, Depends(service)],
                  rid: Annotated[str, Depends(request_id)]) -> ORJSONResponse:
    try:
        event = svc.relation(body.user_id, body.target_id, body.action, body.event_id)
    except InvalidEvent as exc:
        raise HTTPException(exc.status, str(exc)) from None
    if event.user_id == event.target_id:  # not expressible in the schema, so a conflict rather than a 422
        raise HTTPException(409, "an account cannot follow, block or mute itself")
    acks = await _commit(svc, [event], rid, "follows")
    return ORJSONResponse(_result(acks), headers={"x-request-id": rid})
