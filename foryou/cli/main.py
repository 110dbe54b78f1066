"""`foryou <command>`: the one entry point. Every command parses its arguments, calls into the layers and
hands the result to `render`; this module builds the app from them and decides how a failure ends.

Every mistake prints exactly one line starting `error: ` on stderr (no box, no traceback). A wrong
command line (typer/click usage errors: unknown option, missing argument, a value of the wrong type,
out of range or not among the allowed names) exits 2; every other mistake the user can fix exits 1: a
`ForYouError` (a missing or invalid dataset, an unknown user, an existing output, a busy port...; commands
turn the few library exceptions meant for the user that are not yet ForYouErrors into one where they call
the library) or an OS error the user can act on (permissions, a full or read-only disk). Anything else is
a bug: it keeps its traceback (also logged). `foryou` or a command group with no arguments prints its help
and exits 0. Library code never prints — the CLI owns the terminal.
"""

from __future__ import annotations

import errno
import logging
import sys
from typing import NoReturn

import typer
import typer.main

from foryou import logs
from foryou.cli import bench, data, evaluate, experiments, models, quickstart, serve, simulate, timeline, train, world
from foryou.cli.render import err
from foryou.errors import ForYouError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="foryou: X's For You timeline, runnable and inspectable.")
# In `foryou --help` order: the commands, then the command groups.
app.command("world")(world.world)
app.command("quickstart")(quickstart.quickstart)
app.command("serve")(serve.serve)
app.command("compact")(data.compact)
app.command("import")(data.import_)
app.command("timeline")(timeline.timeline)
app.command("train")(train.train)
app.command("simulate")(simulate.simulate)
app.command("eval")(evaluate.eval_)
app.add_typer(data.data_app, name="data")
app.add_typer(bench.bench_app, name="bench")
app.add_typer(models.models_app, name="models")
app.add_typer(experiments.experiments_app, name="experiments")

log = logging.getLogger("foryou.cli")

# An OS error the user can fix (permissions, read-only or full disk) rather than a bug.
ACTIONABLE_ERRNOS = frozenset(getattr(errno, n) for n in ("EACCES", "EPERM", "EROFS", "ENOSPC", "EDQUOT")
                              if hasattr(errno, n))
# typer >= 0.22 vendors click: take its exception classes from typer's own BadParameter.
_CLICK: dict[str, type[Exception]] = {c.__name__: c for c in typer.BadParameter.__mro__ if issubclass(c, Exception)}
ClickException, UsageError = _CLICK["ClickException"], _CLICK["UsageError"]
_NO_ARGS: tuple[type[Exception], ...] = tuple(
    c for c in (getattr(sys.modules[UsageError.__module__], "NoArgsIsHelpError", None),) if c)


def user_message(exc: BaseException) -> str | None:
    """The one-line message of an error the user can act on; None for anything else (a bug)."""
    if isinstance(exc, OSError) and exc.errno in ACTIONABLE_ERRNOS:
        return f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc.strerror)
    if not isinstance(exc, ForYouError):
        return None
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _usage_message(exc: Exception) -> str:
    text = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
    ctx = getattr(exc, "ctx", None)
    return f"{text} (see '{ctx.command_path} --help')" if ctx is not None else text


def _fail(message: str, code: int, kind: str) -> NoReturn:
    log.warning(kind, extra={"error": message, "exit_code": code, "argv": sys.argv[1:]})
    err.print(f"[red]error:[/] {message}", highlight=False)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: exactly one `error:` line for every mistake, exit 2 for a wrong command line, 1 for any
    other mistake; a bug keeps its traceback (and is logged)."""
    logs.configure()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="foryou", standalone_mode=False)
    except _NO_ARGS as exc:  # `foryou`, `foryou data`: their help, as with --help
        text = exc.format_message()  # type: ignore[attr-defined]  # typer's rich help has printed itself already; plain click's has not
        if text.strip():
            typer.echo(text)
        code = 0
    except UsageError as exc:
        _fail(_usage_message(exc), 2, "usage error")
    except ClickException as exc:
        _fail(" ".join(exc.format_message().split()), exc.exit_code, "user error")  # type: ignore[attr-defined]
    except typer.Abort:
        _fail("aborted", 1, "user error")
    except Exception as exc:
        message = user_message(exc)
        if message is None:
            log.exception("unexpected error", extra={"argv": sys.argv[1:]})
            raise
        _fail(message, 1, "user error")
    raise SystemExit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
