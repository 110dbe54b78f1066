"""Experiments in the browser: the list, live results per arm (intervals, lift, SRM, MDE), a form to create
one and a button to stop one. Creating and stopping are calls to `/v1/experiments` from the page, so they
need the token like any client's (the page sends the one entered in its header).

    GET /ui/experiments                     the list and the create form
    GET /ui/experiments/{name}/results      one experiment's results (the page refreshes them)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse

from foryou.experiments import get_experiment_results
from foryou.experiments.definition import NAME_PATTERN
from foryou.experiments.store import ExperimentError, ExperimentStore
from foryou.service.routes.deps import plain, service
from foryou.service.service import Service
from foryou.service.web.pages import fragment, page

router = APIRouter(include_in_schema=False)
Svc = Annotated[Service, Depends(service)]


@router.get("/ui/experiments", response_class=HTMLResponse)
def experiments(request: Request, svc: Svc) -> HTMLResponse:
    listed = ExperimentStore(svc.dataset, svc.state_override).list()
    return page(request, "experiments.html.j2", "experiments", svc, experiments=listed)


@router.get("/ui/experiments/{name}/results", response_class=HTMLResponse)
def results(svc: Svc, name: Annotated[str, PathParam(pattern=NAME_PATTERN)]) -> HTMLResponse:
    try:
        r = plain(get_experiment_results(svc.dataset, name, state=svc.state_override))
    except ExperimentError as exc:  # unknown, or no exposure logged yet
        return fragment("_note.html.j2", message=str(exc))
    return fragment("_results.html.j2", r=r)
