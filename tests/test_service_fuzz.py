"""Fuzzing the API from its own OpenAPI schema (schemathesis): ≥ 1,000 generated requests, valid and
invalid, against the tiny world → never a 5xx."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from foryou.service.app import ServeSettings, create_app


@pytest.mark.slow
def test_no_5xx_on_generated_requests(tiny_world_dir, tmp_path):
    path = tmp_path / "world"
    shutil.copytree(tiny_world_dir, path, ignore=shutil.ignore_patterns(".service"))
    app = create_app(ServeSettings(dataset=path, trace_log=tmp_path / "trace.jsonl"))
    cases: dict[str, int] = {}
    statuses: dict[int, int] = {}
    with TestClient(app):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        for result in schema.get_all_operations():
            op = result.ok()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                examples = 10 if op.path in ("/healthz", "/readyz", "/metrics") else 90

                @given(case=op.as_strategy(generation_mode=mode))
                @settings(max_examples=examples, deadline=None, database=None,
                          suppress_health_check=list(HealthCheck))
                def call(case):
                    response = case.call()
                    cases[case.operation.label] = cases.get(case.operation.label, 0) + 1
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    assert response.status_code < 500, (case.method, case.formatted_path, case.query, case.body,
                                                        response.text[:300])

                try:
                    call()
                except Unsatisfiable:  # no parameters to make invalid (/healthz, ...)
                    assert mode == GenerationMode.NEGATIVE
    assert sum(cases.values()) >= 1000, cases
    assert len(cases) >= 9 and statuses.get(200, 0) > 0 and statuses.get(422, 0) > 0, statuses
