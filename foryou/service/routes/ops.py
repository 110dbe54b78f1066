"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from foryou.service import metrics
from foryou.service.routes.deps import ORJSONResponse, errors
from foryou.service.schemas import Health, Readiness

router = APIRouter(tags=["ops"])


@router.get("/healthz", summary="The process is up", response_model=None, responses={200: {"model": Health}})
async def healthz() -> ORJSONResponse:
    return ORJSONResponse({"status": "ok"})


@router.get("/readyz", summary="Index loaded and the event log applied", response_model=None,
            responses={200: {"model": Readiness}, **errors(503)})
async def readyz(request: Request) -> ORJSONResponse:
    svc = getattr(request.app.state, "service", None)
    if svc is None or not svc.ready:
        return ORJSONResponse({"detail": "starting: loading the index and replaying the event store"},
                              status_code=503)
    return ORJSONResponse({"status": "ready", "applied_seq": svc.applied_seq, "models": svc.engine.model_versions()})


@router.get("/metrics", summary="Prometheus metrics", response_class=Response, responses={200: {
    "description": "the Prometheus text exposition format",
    "content": {"text/plain": {"schema": {"type": "string"}}}}})
async def prometheus(request: Request) -> Response:
    svc = getattr(request.app.state, "service", None)
    if svc is not None and svc.ready:
        await run_in_threadpool(svc.monitor.publish)  # drift and exposure of the traffic served so far
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
