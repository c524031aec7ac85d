"""`qyolo-trt` command group. Each subcommand lives in its own module, imported only when used."""

from __future__ import annotations

import importlib
import os
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


def main() -> None:
    """Console entry point: user errors become one line on stderr and exit code 2, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except QyoloError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - the last line of defence against tracebacks
        if os.environ.get("QYOLO_DEBUG"):
            raise
        click.echo(f"error: internal error ({type(exc).__name__}: {exc}); rerun with QYOLO_DEBUG=1 for a traceback", err=True)
        sys.exit(1)
