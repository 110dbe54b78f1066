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

from foryou.data.ids import IdMap
from foryou.experiments import create_experiment, get_experiment_results
from foryou.experiments.definition import NAME_PATTERN, Experiment
from foryou.experiments.runtime import ActiveExperiments
from foryou.experiments.store import ExperimentError, ExperimentStore
from foryou.service.routes.deps import ORJSONRoute, errors, plain
from foryou.service.schemas import ID_FORMAT, ID_PATTERN, Assignments, ExperimentIn

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


def state_override(request: Request) -> Path | None:
    """The server's `--state-dir` (None: the dataset's default state directory)."""
    return getattr(getattr(request.app.state, "service", None), "state_override", None)


StateDir = Annotated[Path | None, Depends(state_override)]


@router.post("", summary="Create an experiment", response_model=Experiment,
             responses=errors(401, 409, 413, 422))
def create(body: ExperimentIn, dataset: Dataset, state: StateDir) -> dict[str, Any]:
    try:
        return create_experiment(dataset, body.experiment(), state=state).model_dump()
    except ExperimentError as exc:  # the name is taken, the layer is full, or a running experiment changes a key
        raise HTTPException(409, str(exc)) from None


@router.get("", summary="List experiments", response_model=list[Experiment])
def list_(dataset: Dataset, state: StateDir) -> list[dict[str, Any]]:
    return [e.model_dump() for e in ExperimentStore(dataset, state).list()]


@router.get("/assignments/{user_id}", summary="A user's arms and merged overrides", response_model=None,
            responses={200: {"model": Assignments}, **errors(404, 422)})
def assignments(user_id: Annotated[str, PathParam(pattern=ID_PATTERN, json_schema_extra=ID_FORMAT)], dataset: Dataset,
                state: StateDir, request: Request) -> dict[str, Any]:
    svc = getattr(request.app.state, "service", None)
    ids = svc.engine.ids if svc is not None else IdMap.load(dataset)
    internal = ids.users.one(user_id)
    if internal is None:
        raise HTTPException(404, f"unknown user {user_id}")
    overrides, chosen = ActiveExperiments(ExperimentStore(dataset, state).running()).overrides_for(internal)
    return {"user_id": ids.users.show(internal), "assignments": chosen, "overrides": overrides}


@router.get("/{name}/results", summary="Per-arm analysis with significance", responses=errors(404, 422))
def results(name: Name, dataset: Dataset, state: StateDir) -> dict[str, Any]:
    try:
        return plain(get_experiment_results(dataset, name, state=state))
    except ExperimentError as exc:
        raise HTTPException(404, str(exc)) from None


@router.post("/{name}/stop", summary="Stop assigning users", response_model=Experiment,
             responses=errors(401, 404, 422))
def stop(name: Name, dataset: Dataset, state: StateDir) -> dict[str, Any]:
    try:
        return ExperimentStore(dataset, state).set_status(name, "stopped").model_dump()
    except ExperimentError as exc:
        raise HTTPException(404, str(exc)) from None
