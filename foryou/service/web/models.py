"""The model registry in the browser: every version with its per-head test metrics (and the ground truth's
ceiling where the data has one), which version serves now, and promote / roll back — calls to `/v1/models`
from the page, behind the token.

    GET /ui/models
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from foryou.service.routes.deps import service
from foryou.service.routes.models import version_out
from foryou.service.service import Service
from foryou.service.web.pages import page
from foryou.training.pipeline import registry_for

router = APIRouter(include_in_schema=False)


@router.get("/ui/models", response_class=HTMLResponse)
def models(request: Request, svc: Annotated[Service, Depends(service)]) -> HTMLResponse:
    versions = [version_out(v) for v in registry_for(svc.dataset, svc.state_override).list()]
    by_model: dict[str, list[dict]] = {}
    for v in versions:
        by_model.setdefault(v["name"], []).append(v)
    return page(request, "models.html.j2", "models", svc, by_model=by_model)
