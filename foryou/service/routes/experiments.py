"""HTTP endpoints for experiments (creating and stopping one changes what users are served, so both
need the bearer token, like every state-changing route: `security.WriteAuth`):

    POST /v1/experiments                      create (body: an Experiment)
    GET  /v1/experiments                      list
    GET  /v1/experiments/{name}/results       per-arm analysis (Welch / z tests, CI, lift, SRM, MDE)
    POST /v1/experiments/{name}/stop          stop assigning users
    GET  /v1/experiments/assignments/{user}   the user's arms and the overrides they are served with
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam

from foryou.experiments import create_experiment, get_experiment_results
from foryou.experiments.definition import NAME_PATTERN, Experiment
from foryou.experiments.runtime import ActiveExperiments
from foryou.experiments.store import ExperimentError, ExperimentStore
from foryou.service.routes.deps import ORJSONRoute, errors
from foryou.service.schemas import ID_MAX, Assignments, ExperimentIn

router = APIRouter(prefix="/v1/experiments", tags=["experiments"], route_class=ORJSONRoute)
Name = Annotated[str, PathParam(pattern=NAME_PATTERN, description="an experiment's name")]


def dataset_dir(request: Request) -> Path:
    """The served dataset: the running service's, or `app.state.dataset` for a bare app."""
    svc = getattr(request.app.state, "service", None)
    path = getattr(svc, "dataset", None) or getattr(request.app.state, "dataset", None)
    if path is None:
        raise HTTPException(503, "no dataset loaded")
    return Path(path)


Dataset = Annotated[Path, Depends(dataset_dir)]


@router.post("", summary="Create an experiment", response_model=Experiment,
             responses=errors(401, 409, 413, 422))
def create(body: ExperimentIn, dataset: Dataset) -> dict[str, Any]:
    try:
        return create_experiment(dataset, body.experiment()).model_dump()
    except ExperimentError as exc:  # the name is taken, the layer is full, or a running experiment changes a key
        raise HTTPException(409, str(exc)) from None


@router.get("", summary="List experiments", response_model=list[Experiment])
def list_(dataset: Dataset) -> list[dict[str, Any]]:
    return [e.model_dump() for e in ExperimentStore(dataset).list()]


@router.get("/assignments/{user_id}", summary="A user's arms and merged overrides", response_model=None,
            responses={200: {"model": Assignments}, **errors(422)})
def assignments(user_id: Annotated[int, PathParam(ge=0, le=ID_MAX)], dataset: Dataset) -> dict[str, Any]:
    overrides, chosen = ActiveExperiments(ExperimentStore(dataset).running()).overrides_for(user_id)
    return {"user_id": user_id, "assignments": chosen, "overrides": overrides}


@router.get("/{name}/results", summary="Per-arm analysis with significance", responses=errors(404, 422))
def results(name: Name, dataset: Dataset) -> dict[str, Any]:
    try:
        return _plain(get_experiment_results(dataset, name))
    except ExperimentError as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/{name}/stop", summary="Stop assigning users", response_model=Experiment,
             responses=errors(401, 404, 422))
def stop(name: Name, dataset: Dataset) -> dict[str, Any]:
    try:
        return ExperimentStore(dataset).set_status(name, "stopped").model_dump()
    except ExperimentError as exc:
        raise HTTPException(404, str(exc)) from None


def _plain(v: Any) -> Any:
    """JSON-safe: NaN → None, numpy scalars → Python."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(x) for x in v]
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v
