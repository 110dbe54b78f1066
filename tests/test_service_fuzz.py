"""The API against its own OpenAPI contract (schemathesis, every check it has): valid and invalid
requests generated from the schema, with and without a write token, ≥ 5,000 cases each, against the
tiny world. Every response must be what the schema says — status documented, body of the documented
shape, valid input accepted, invalid input rejected, writes refused without the token when there is
one, 405 with a correct `Allow` for methods a path does not take — and never a 5xx."""

from __future__ import annotations

import shutil

import pytest
import schemathesis
from contract import ContractClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup  # a BaseExceptionGroup: `except Exception` misses it

from foryou.service import cursor as cursors
from foryou.service.app import ServeSettings, create_app
from foryou.service.cursor import ID_MAX
from foryou.service.schemas import ID_PATTERN

MIN_CASES = 5000  # the open server: the whole contract; with a token, a third as many (auth is what it adds)
# A cursor is opaque: the schema gives its alphabet, and this is how valid ones are made.
schemathesis.openapi.format("cursor", st.builds(
    lambda ids, session: cursors.encode(set(ids), session),
    st.sets(st.integers(0, ID_MAX // 2**20), max_size=40), st.one_of(st.none(), st.integers(0, 2**52))))
# A string id: any the pattern allows, or one of the tiny world's (ints written as text) to reach real users and posts.
schemathesis.openapi.format("platform-id", st.one_of(st.from_regex(ID_PATTERN, fullmatch=True),
                                                    st.integers(0, 3000).map(str)))


# Operations that take no input: a few examples say all there is (GET /v1/models also reads every version).
PARAMETERLESS = {("GET", p) for p in ("/healthz", "/readyz", "/metrics", "/v1/models", "/v1/experiments")}


def _fuzz(app, headers: dict[str, str] | None, per_operation: int = 260
          ) -> tuple[dict[str, int], dict[int, int], list[str]]:
    cases: dict[str, int] = {}
    statuses: dict[int, int] = {}
    failures: list[str] = []
    with ContractClient(app):
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        for result in schema.get_all_operations():
            op = result.ok()
            examples = 15 if (op.method.upper(), op.path) in PARAMETERLESS else per_operation
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @given(case=op.as_strategy(generation_mode=mode))
                # derandomize: the same cases on every run, so CI is reproducible; a new seed explores anew
                @settings(max_examples=examples, deadline=None, database=None, report_multiple_bugs=True,
                          derandomize=True, suppress_health_check=list(HealthCheck))
                def call(case):
                    response = case.call_and_validate(headers=headers)  # all checks enabled by default
                    label = case.operation.label
                    cases[label] = cases.get(label, 0) + 1
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

                try:
                    call()
                except Unsatisfiable:  # nothing to make invalid (/healthz, ...)
                    assert mode == GenerationMode.NEGATIVE
                except (Exception, FailureGroup) as exc:  # collect every operation's failures, then fail once
                    failures.append(f"{op.label} [{mode.value}]: {exc}"[:3000])
    return cases, statuses, failures


@pytest.mark.slow
@pytest.mark.parametrize("token", [None, "fuzz-t0ken"], ids=["open", "token"])
def test_the_api_keeps_its_openapi_contract(tiny_world_dir, tmp_path, token):
    path = tmp_path / "world"
    shutil.copytree(tiny_world_dir, path, ignore=shutil.ignore_patterns(".service"))
    app = create_app(ServeSettings(dataset=path, trace_log=tmp_path / "trace.jsonl", token=token))
    # The token run repeats the contract with auth on (the open run covers it at full depth): a third as deep.
    cases, statuses, failures = _fuzz(app, {"Authorization": f"Bearer {token}"} if token else None,
                                      per_operation=90 if token else 260)
    assert not failures, "\n\n".join(failures)
    assert sum(cases.values()) >= (MIN_CASES // 3 if token else MIN_CASES), cases
    # every operation was exercised and both kinds of answer happened: requests served (most drawn ids
    # do not exist, so 404s dominate the valid ones), invalid ones refused, writes refused without auth
    assert len(cases) >= 14 and statuses.get(200, 0) > (80 if token else 250), statuses
    assert statuses.get(422, 0) > (300 if token else 1000), statuses
    assert statuses.get(401, 0) > 30 if token else 401 not in statuses, statuses
