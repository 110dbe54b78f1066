"""Reports and live metrics in the browser: the eval and simulation reports `foryou eval` / `foryou
simulate` wrote for this dataset (listed from `foryou.reports.catalog`, opened as they are: self-contained
HTML), and small charts of the service's own metrics that update every few seconds.

    GET /ui/reports                         the list and the live charts
    GET /ui/reports/{i}                     the i-th listed report
    GET /ui/metrics.json                    cumulative counters the charts difference (req/s, p50/p99, …)
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, HTMLResponse
from prometheus_client.parser import text_string_to_metric_families

from foryou.data.state import state_dir
from foryou.reports import catalog
from foryou.service import metrics
from foryou.service.routes.deps import ORJSONResponse, service
from foryou.service.service import Service
from foryou.service.web.pages import fragment, page

router = APIRouter(include_in_schema=False)
Svc = Annotated[Service, Depends(service)]
TIMELINE_ROUTE = "/v1/users/{user_id}/timeline"


def _entries(svc: Service) -> list[catalog.ReportEntry]:
    return catalog.entries(state_dir(svc.dataset, svc.state_override))


@router.get("/ui/reports", response_class=HTMLResponse)
def reports(request: Request, svc: Svc) -> HTMLResponse:
    return page(request, "reports.html.j2", "reports", svc, reports=list(enumerate(_entries(svc))))


@router.get("/ui/reports/{i}", response_model=None)
def report(svc: Svc, i: Annotated[int, PathParam(ge=0, le=10_000)]) -> FileResponse | HTMLResponse:
    listed = _entries(svc)
    if i >= len(listed):
        return fragment("_error.html.j2", 404, message=f"no report {i}: the list has {len(listed)}")
    return FileResponse(listed[i].path, media_type="text/html")


@router.get("/ui/metrics.json")
def live_metrics(request: Request, svc: Svc) -> ORJSONResponse:
    """The counters behind the charts, cumulative (the page takes differences between two polls): timeline
    requests and their latency histogram, cache hits and misses, shed requests, and the drift and exposure
    gauges (published from the traffic served so far)."""
    if svc.ready:
        svc.monitor.publish()
    out: dict[str, Any] = {"buckets": {}, "count": 0.0, "cache": {"hit": 0.0, "miss": 0.0}, "shed": 0.0,
                           "gauges": {}}
    body, _ = metrics.render()
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            name, labels, value = s.name, s.labels, s.value
            if name == "foryou_http_request_seconds_bucket" and labels.get("route") == TIMELINE_ROUTE:
                le = labels["le"]
                out["buckets"][le] = out["buckets"].get(le, 0.0) + value
            elif name == "foryou_http_request_seconds_count" and labels.get("route") == TIMELINE_ROUTE:
                out["count"] += value
            elif name == "foryou_cache_requests_total" and labels.get("result") in ("hit", "miss"):
                out["cache"][labels["result"]] += value
            elif name == "foryou_shed_total":
                out["shed"] += value
            elif name in ("foryou_exposure", "foryou_prediction_psi"):
                key = name.removeprefix("foryou_") + ":" + ",".join(f"{v}" for v in labels.values())
                out["gauges"][key] = value
    return ORJSONResponse(out)
