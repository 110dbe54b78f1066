"""What route handlers share: the service of the running app, orjson responses, request ids."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from foryou.service.service import Service

_REQUEST_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


class ORJSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def service(request: Request) -> Service:
    return request.app.state.service


def request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    return given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
