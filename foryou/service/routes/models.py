"""The model registry over HTTP (what `foryou models list|promote|rollback` does), for the web app and for
deploy scripts. Promoting or rolling back changes what is served, so both need the bearer token like every
state-changing route (`security.WriteAuth`); the answering worker reloads at once, the others within a
second (`foryou.service.promotions`: they watch the registry on disk, as they do for `foryou models promote`).

    GET  /v1/models                       every version: status, headline metrics, which one serves
    POST /v1/models/{name}/promote        body {"version": N}
    POST /v1/models/{name}/rollback       the previously promoted version
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from foryou.registry import ModelRegistry, ModelVersion, RegistryError
from foryou.service.routes.deps import ORJSONRoute, errors, plain, service
from foryou.service.service import Service
from foryou.training.pipeline import registry_for

router = APIRouter(prefix="/v1/models", tags=["models"], route_class=ORJSONRoute)
Name = Annotated[str, PathParam(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="a model's registry name")]


class PromoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = Field(ge=1, le=1_000_000_000, description="the version to serve from now on")


def registry(svc: Annotated[Service, Depends(service)]) -> ModelRegistry:
    return registry_for(svc.dataset, svc.state_override)


def version_out(v: ModelVersion) -> dict[str, Any]:
    """A version as JSON: its test metrics per head (AUC, RCE and the ground truth's ceiling where known)."""
    test = (v.metrics or {}).get("test") or {}
    heads = {h: {k: m[k] for k in ("auc", "rce", "ceiling_auc", "positives") if k in m}
             for h, m in test.items() if isinstance(m, dict)}
    return {"name": v.name, "version": v.version, "label": v.label, "created": v.created, "status": v.status,
            "promoted": v.promoted, "code_revision": v.code_revision, "heads": heads,
            "verdict": _verdict((v.metrics or {}).get("promotion"))}


def _verdict(record: dict[str, Any] | None) -> str | None:
    """The promotion gate's verdict on this version (foryou.eval.promotion), as one line."""
    if not isinstance(record, dict):
        return None
    outcome = "promoted" if record.get("promoted") else "not promoted"
    cand, served = record.get("candidate_ndcg"), record.get("served_ndcg")
    if cand is None or served is None:
        return f"{record.get('reason') or 'no comparison'} → {outcome}"
    metric = record.get("metric", "validation")
    return f"{metric} {cand:.4f} vs served {served:.4f} ({record.get('served')}) → {outcome}"


@router.get("", summary="Every registered model version and what is served now", response_model=None)
async def list_models(reg: Annotated[ModelRegistry, Depends(registry)],
                      svc: Annotated[Service, Depends(service)]) -> dict[str, Any]:
    versions = await run_in_threadpool(reg.list)
    return plain({"serving": svc.engine.model_versions(), "versions": [version_out(v) for v in versions]})


async def _change(svc: Service, change: Any, missing: int) -> dict[str, Any]:
    try:
        chosen = await run_in_threadpool(change)
    except RegistryError as exc:  # `missing`: no such version (promote), no earlier one (rollback)
        raise HTTPException(missing if exc.kind == "missing" else 409, str(exc)) from None
    serving = await run_in_threadpool(svc.reload_models)  # the other workers within a second (PromotionWatch)
    return {"promoted": chosen.label, "serving": serving}


@router.post("/{name}/promote", summary="Serve this version from now on", response_model=None,
             responses=errors(401, 404, 409, 422))
async def promote(name: Name, body: PromoteIn, reg: Annotated[ModelRegistry, Depends(registry)],
                  svc: Annotated[Service, Depends(service)]) -> dict[str, Any]:
    if name not in reg.names():
        raise HTTPException(404, f"no model named {name!r}")
    return await _change(svc, lambda: reg.promote(name, body.version), 404)


@router.post("/{name}/rollback", summary="Go back to the previously promoted version", response_model=None,
             responses=errors(401, 404, 409, 422))
async def rollback(name: Name, reg: Annotated[ModelRegistry, Depends(registry)],
                   svc: Annotated[Service, Depends(service)]) -> dict[str, Any]:
    if name not in reg.names():
        raise HTTPException(404, f"no model named {name!r}")
    return await _change(svc, lambda: reg.rollback(name), 409)
