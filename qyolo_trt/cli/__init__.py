"""`qyolo-trt` command group. Each subcommand lives in its own module, imported only when used."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import signal
import sys

import click

from .. import __version__
from ..errors import QyoloError

# command name -> "module:function" inside qyolo_trt.cli, in pipeline order
COMMANDS: dict[str, str] = {
    "export": "export:export_cmd",
    "calibrate": "calibrate:calibrate_cmd",
    "quantize": "quantize:quantize_cmd",
    "inspect": "inspect:inspect_cmd",
    "build": "build:build_cmd",
    "eval": "eval:eval_cmd",
    "compare": "compare:compare_cmd",
    "bench": "bench:bench_cmd",
    "sensitivity": "sensitivity:sensitivity_cmd",
    "plot-hist": "plot_hist:plot_hist_cmd",
    "qat": "qat:qat_cmd",
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when that subcommand is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, target in COMMANDS.items() if _module_exists(target)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None or not _module_exists(target):
            return None
        module_name, attr = target.split(":")
        return getattr(importlib.import_module(f"{__name__}.{module_name}"), attr)


def _module_exists(target: str) -> bool:
    return importlib.util.find_spec(f"{__name__}.{target.split(':')[0]}") is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qyolo-trt")
def cli() -> None:
    """FP32 YOLO -> accurate, fast INT8 TensorRT engines.

    Pipeline: export -> calibrate -> quantize -> build -> eval / bench.
    """


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every temp file and temp dir is cleaned up on the way out."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated()


def _fail(message: str, code: int, as_json: bool) -> None:
    """The one failure form: ``error: ...`` on stderr (one line), ``{"error": ...}`` on stdout under --json, exit ``code``."""
    line = " ".join(message.split())
    click.echo(f"error: {line}", err=True)
    if as_json:
        click.echo(json.dumps({"error": line, "exit_code": code}))
    sys.exit(code)


def main() -> None:
    """Console entry point: every failure is one ``error:`` line on stderr (exit 2 for bad input, OS errors and
    missing GPUs; 130 interrupted, 143 terminated; 1 only for internal errors), never a traceback."""
    as_json = "--json" in sys.argv[1:]
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:  # usage errors: one line too, not click's Usage/Try/Error block
        _fail(exc.format_message(), 2 if isinstance(exc, click.UsageError) else exc.exit_code, as_json)
    except QyoloError as exc:
        _fail(str(exc), exc.exit_code, as_json)
    except OSError as exc:  # disk full, read-only folder, permissions: the OS's words and the path
        where = f": {exc.filename}" if exc.filename else ""
        _fail(f"{(exc.strerror or str(exc)).lower()}{where}", 2, as_json)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Terminated:
        click.echo("terminated", err=True)
        sys.exit(143)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("QYOLO_DEBUG"):
            raise
        _fail(f"internal error ({type(exc).__name__}: {exc}); rerun with QYOLO_DEBUG=1 for a traceback", 1, as_json)
