"""The HTML reports' one layout: Jinja2 templates (`templates/base.html.j2` and one template per
report, shipped as package data) and `render`, with autoescaping on — a value reaches the page as
text unless a template marks it `|safe` (only the embedded JSON payload does, escaped for <script>)."""

from __future__ import annotations

from functools import cache
from typing import Any

import jinja2


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("foryou.reports", "templates"),
        autoescape=True,  # every .j2 here is HTML
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, not an empty cell
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
    )
    env.filters["repr"] = repr  # data-value attributes hold Python's repr of a number (round-trips floats)
    return env


def render(template_name: str, **context: Any) -> str:
    """A report page from `templates/<template_name>`."""
    return environment().get_template(template_name).render(**context)
