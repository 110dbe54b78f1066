"""What every page of the web app shares: the templates (autoescaped, a missing value is an error), the
layout's context (dataset, whether writes need the token, which view is open) and the HTML responses."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from foryou.service.service import Service

VIEWS = (("explorer", "/", "Timeline"), ("experiments", "/ui/experiments", "Experiments"),
         ("models", "/ui/models", "Models"), ("reports", "/ui/reports", "Reports"))


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("foryou.service.web", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = lambda v, d=3: "—" if v is None or v != v else f"{v:.{d}f}"
    env.filters["pct"] = lambda v, d=1: "—" if v is None or v != v else f"{100 * v:.{d}f} %"
    return env


def page(request: Request, template: str, view: str, svc: Service, status: int = 200,
         **context: Any) -> HTMLResponse:
    """A whole page in the layout (`view`: the open tab)."""
    html = environment().get_template(template).render(
        views=VIEWS, view=view, dataset=svc.dataset.name, token_required=token_required(request),
        models=svc.engine.model_versions(), **context)
    return HTMLResponse(html, status_code=status)


def fragment(template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A part of a page, for htmx to swap in."""
    return HTMLResponse(environment().get_template(template).render(**context), status_code=status)


def token_required(request: Request) -> bool:
    return bool(getattr(request.app.state, "token_required", False))
