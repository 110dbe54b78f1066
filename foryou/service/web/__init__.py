"""The web app at `/`: the timeline explorer, experiments, models and reports in the browser, in the
service's own process and behind its own auth — every action is a call to the JSON API (`/v1/...`) from the
page, so the bearer token (`security.WriteAuth`) guards it exactly as it guards any other client.

Server-rendered Jinja2 pages (`templates/`), htmx for partial updates and uPlot for the live charts, both
vendored under `static/vendor/` with their licences (no CDN, no build step: the page works offline).
Routes are outside the API's schema (`include_in_schema=False`) and under `/` and `/ui/` only, so the API's
routes and their latency are untouched.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Response
from fastapi.staticfiles import StaticFiles

from foryou.service.web import experiments, explorer, models, reports

ROUTERS = (explorer.router, experiments.router, models.router, reports.router)
STATIC = Path(__file__).parent / "static"


def install(app: FastAPI) -> None:
    """Mount the web app's pages and its static files on the service's app."""
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # browsers ask every page's origin for one (the reports' pages too): answer "none" rather than a 404
    app.add_api_route("/favicon.ico", lambda: Response(status_code=204), include_in_schema=False)
