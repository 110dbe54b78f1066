"""The service's OpenAPI contract, checked on every response the service tests get.

`ContractClient` is a FastAPI `TestClient`, and `contract_client(base_url)` an `httpx.Client` for a
real `foryou serve` process; both run `Contract.check` as an httpx response hook, so a test that
gets a response the schema does not document fails at that request, with the request, the status
and what is wrong. The rules:

- an operation of the schema (method + path template) answers only the statuses it documents
  (exact, `4XX`-style ranges, or `default`), with a documented content type, and a JSON body valid
  against that status's schema (OpenAPI 3.1 schemas are JSON Schema 2020-12: jsonschema_rs, the
  validator schemathesis uses, checks them, `$ref`s into the document's components included);
- a documented path asked with a method it does not take answers an error (405), and any error
  outside the schema (an unknown path's 404) has the one error shape, `ErrorOut`;
- paths outside the schema that answer 2xx/3xx (/docs, /openapi.json, the docs' assets) are not API.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
from fastapi import FastAPI
from fastapi.testclient import TestClient

from foryou.service.app import ServeSettings, create_app

ERROR_SCHEMA = "ErrorOut"
_BODY_SHOWN = 300  # characters of a failing body quoted in the message
_ISSUES_SHOWN = 5


class ContractViolation(AssertionError):
    """A response the OpenAPI schema does not document."""


class Contract:
    """The checks of one OpenAPI document (built once per app or server)."""

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        # the most literal template first (`/x/assignments/{id}` before `/x/{name}/stop`), as a router would
        self._templates = [(re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$"), p)
                           for p in sorted(spec.get("paths", {}), key=lambda p: -len(re.sub(r"\{[^}]+\}", "", p)))]
        self._validators: dict[tuple[str, str, str, str], Any] = {}
        self._error = self._validator({"$ref": f"#/components/schemas/{ERROR_SCHEMA}"})

    def _validator(self, schema: dict[str, Any]) -> Any:
        """A validator of `schema` whose `#/components/...` references resolve in this document."""
        return jsonschema_rs.Draft202012Validator({**schema, "components": self.spec.get("components", {})})

    def check(self, response: httpx.Response) -> None:
        """Raise ContractViolation unless `response` is one the schema documents."""
        method, path = response.request.method.upper(), response.request.url.path
        where = f"{method} {path} → {response.status_code}"
        templates = [p for rx, p in self._templates if rx.match(path)]
        template = next((p for p in templates if method.lower() in self.spec["paths"][p]), None)
        if template is None:
            self._check_outside(where, response, documented_path=bool(templates))
            return
        operation = self.spec["paths"][template][method.lower()]
        responses = operation.get("responses", {})
        status = str(response.status_code)
        documented = responses.get(status) or responses.get(f"{status[0]}XX") or responses.get("default")
        if documented is None:
            raise ContractViolation(f"{where}: status not documented for {method} {template} "
                                    f"(documented: {', '.join(sorted(responses))}); body: {_shown(response)}")
        if method == "HEAD" or response.status_code in (204, 304):
            return
        content = documented.get("content") or {}
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not content:
            if response.content:
                raise ContractViolation(f"{where}: the schema documents no body, got {media or 'untyped'} "
                                        f"{_shown(response)}")
            return
        if not any(_media_matches(media, m) for m in content):
            raise ContractViolation(f"{where}: content type {media or '(none)'} not documented "
                                    f"(documented: {', '.join(content)})")
        if "json" not in media:
            return
        key = (template, method, status, next(m for m in content if _media_matches(media, m)))
        if key not in self._validators:
            self._validators[key] = self._validator(content[key[3]].get("schema", {}))
        try:
            body = response.json()
        except ValueError:
            raise ContractViolation(f"{where}: the body is not JSON: {_shown(response)}") from None
        problems = _issues(self._validators[key], body)
        if problems:
            raise ContractViolation(f"{where}: body does not match the schema documented for {method} {template} "
                                    f"{status}: {problems}; body: {_shown(response)}")

    def _check_outside(self, where: str, response: httpx.Response, documented_path: bool) -> None:
        if response.status_code < 400:
            if documented_path:
                raise ContractViolation(f"{where}: served a method the schema does not document for this path")
            return  # not API: /docs, /openapi.json, the docs' assets
        try:
            body = response.json()
        except ValueError:
            raise ContractViolation(f"{where}: an error that is not JSON: {_shown(response)}") from None
        problems = _issues(self._error, body)
        if problems:
            raise ContractViolation(f"{where}: an error not of the shape {ERROR_SCHEMA}: {problems}; "
                                    f"body: {_shown(response)}")


def _issues(validator: Any, body: Any) -> str:
    """What is wrong where ("items/0/score: 'x' is not of type 'number'"), the first few; "" when valid."""
    errors = list(validator.iter_errors(body))
    lines = [f"{'/'.join(map(str, e.instance_path)) or '(body)'}: {e.message}" for e in errors[:_ISSUES_SHOWN]]
    more = len(errors) - len(lines)
    return "; ".join(lines) + (f" (and {more} more)" if more > 0 else "")


def _media_matches(media: str, documented: str) -> bool:
    kind, _, sub = documented.lower().partition("/")
    return documented in ("*/*", media) or (sub == "*" and media.startswith(kind + "/"))


def _shown(response: httpx.Response) -> str:
    text = response.text
    return repr(text if len(text) <= _BODY_SHOWN else text[:_BODY_SHOWN] + "…")


class ContractClient(TestClient):
    """A TestClient whose every response is checked against the app's own OpenAPI schema."""

    def __init__(self, app: FastAPI, *args: Any, **kwargs: Any):
        super().__init__(app, *args, **kwargs)
        self._contract: Contract | None = None
        self.event_hooks = {**self.event_hooks, "response": [*self.event_hooks["response"], self._check]}

    def _check(self, response: httpx.Response) -> None:
        if self._contract is None:
            self._contract = Contract(self.app.openapi())  # type: ignore[attr-defined]
        response.read()
        self._contract.check(response)


def service_client(dataset: Path, tmp: Path, token: str | None = None, config: dict[str, Any] | None = None,
                   **service_config: Any) -> ContractClient:
    """A checked client of the service on `dataset` (trace log under `tmp`; `config`: a ForYouConfig
    override tree, `service_config`: keys of its `service` section); use it as a context manager so
    the service starts and stops."""
    tree = {**(config or {}), **({"service": service_config} if service_config else {})}
    return ContractClient(create_app(ServeSettings(dataset=dataset, token=token, trace_log=tmp / "trace.jsonl",
                                                   config=tree)))


class _RemoteContract:
    """The schema of a running server, fetched (once) from its /openapi.json on the first response."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self._contract: Contract | None = None
        self._lock = threading.Lock()

    def __call__(self, response: httpx.Response) -> None:
        with self._lock:
            if self._contract is None:
                spec = httpx.get(f"{self.base_url}/openapi.json", timeout=10)
                spec.raise_for_status()
                self._contract = Contract(spec.json())
        response.read()
        self._contract.check(response)


def contract_client(base_url: str, **kwargs: Any) -> httpx.Client:
    """An httpx.Client for a real server whose every response is checked against the server's schema."""
    hooks = kwargs.pop("event_hooks", {})
    return httpx.Client(base_url=base_url, event_hooks={
        **hooks, "response": [*hooks.get("response", []), _RemoteContract(base_url)]}, **kwargs)
