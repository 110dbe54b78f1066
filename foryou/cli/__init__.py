"""The `foryou` command line: `main.py` builds the app and ends every failure; one module per command
(group) parses, calls the library and hands the result to `render.py`; `params.py` holds what they share."""

from foryou.cli.main import app, main

__all__ = ["app", "main"]
