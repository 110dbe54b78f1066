"""The contract checker itself (`tests/contract.py`, run on every response of the service tests):
it passes what the OpenAPI schema documents and fails, with a message naming the request, the
status and the mismatch, on what it does not."""

from __future__ import annotations

import pytest
from contract import Contract, ContractClient, ContractViolation
from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from foryou.service.schemas import ErrorOut


class Thing(BaseModel):
    id: int
    name: str


def _app() -> FastAPI:
    app = FastAPI()
    documented = {200: {"model": Thing}, 404: {"model": ErrorOut}}

    @app.get("/things/{case}", response_model=None, responses=documented)
    def thing(case: str) -> JSONResponse:
        bodies = {"good": (200, {"id": 1, "name": "a"}), "wrong-type": (200, {"id": "1", "name": "a"}),
                  "missing": (200, {"id": 1}), "gone": (404, {"detail": "unknown thing"}),
                  "bad-error": (404, {"message": "unknown"}), "teapot": (418, {"detail": "short and stout"})}
        status, body = bodies[case]
        return JSONResponse(body, status)

    @app.get("/text", response_model=None, responses={200: {"model": Thing}})
    def text() -> PlainTextResponse:
        return PlainTextResponse("id=1")

    @app.get("/things/{a}/{b}", response_model=None, responses={200: {"model": Thing}})
    def pair(a: str, b: str) -> JSONResponse:
        raise HTTPException(409, "nope")

    @app.get("/hidden-method", response_model=None, responses={200: {"model": Thing}})
    def documented() -> dict:
        return {"id": 1, "name": "a"}

    @app.post("/hidden-method", include_in_schema=False)
    def undocumented() -> dict:
        return {}

    @app.get("/hidden", include_in_schema=False)
    def hidden() -> JSONResponse:
        return JSONResponse({"message": "unknown"}, 404)

    return app


@pytest.fixture(scope="module")
def client():
    return ContractClient(_app())


def test_documented_responses_pass(client):
    assert client.get("/things/good").json() == {"id": 1, "name": "a"}
    assert client.get("/things/gone").status_code == 404
    assert client.get("/nowhere").status_code == 404  # outside the schema: the error shape is enough
    assert client.get("/docs").status_code == 200  # not API


@pytest.mark.parametrize(("path", "expected"), [
    ("/things/wrong-type", r"GET /things/wrong-type → 200: body does not match the schema documented for "
                           r"GET /things/\{case\} 200: id: \"1\" is not of type \"integer\""),
    ("/things/missing", r"GET /things/missing → 200: body does not match .*\(body\): \"name\" is a required property"),
    ("/things/bad-error", r"GET /things/bad-error → 404: body does not match .*\(body\): \"detail\" is a required "
                          r"property"),
    ("/things/teapot", r"GET /things/teapot → 418: status not documented for GET /things/\{case\} "
                       r"\(documented: 200, 404, 422\)"),
    ("/text", r"GET /text → 200: content type text/plain not documented \(documented: application/json\)"),
    ("/things/a/b", r"GET /things/a/b → 409: status not documented for GET /things/\{a\}/\{b\}"),
])
def test_what_the_schema_does_not_document_fails_the_request_with_a_clear_message(client, path, expected):
    with pytest.raises(ContractViolation, match=expected):
        client.get(path)


def test_outside_the_schema_only_errors_of_the_error_shape_pass(client):
    assert client.post("/things/good").status_code == 405  # the router's {"detail": ...}
    with pytest.raises(ContractViolation, match=r"POST /hidden-method → 200: served a method the schema does not "):
        client.post("/hidden-method")
    with pytest.raises(ContractViolation, match=r"GET /hidden → 404: an error not of the shape ErrorOut"):
        client.get("/hidden")


def test_the_service_schema_is_checkable(tiny_world_dir, tmp_path):
    from foryou.service.app import ServeSettings, create_app

    spec = create_app(ServeSettings(dataset=tiny_world_dir, trace_log=tmp_path / "t.jsonl")).openapi()
    contract = Contract(spec)
    assert len(contract._templates) == len(spec["paths"])
