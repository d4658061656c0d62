"""The ``shoal`` command line (click + rich)."""

from __future__ import annotations

import runpy
import sys
import time
from pathlib import Path

import click
from rich.console import Console

from . import __version__
from .session import SCHEDULERS, default_scheduler

console = Console(stderr=True)


@click.group()
@click.version_option(__version__, prog_name="shoal")
def main() -> None:
    """shoal: Python task graphs on workers that schedule each other."""


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--scheduler",
    type=click.Choice(SCHEDULERS),
    default="sync",
    show_default=True,
    help="Where compute() calls without an explicit scheduler or session run.",
)
def run(script: Path, args: tuple[str, ...], scheduler: str) -> None:
    """Run SCRIPT (a Python file) with its compute() calls on the chosen scheduler.

    Arguments after the script name are passed to it in sys.argv.
    """
    old_argv = sys.argv
    sys.argv = [str(script), *args]
    sys.path.insert(0, str(script.resolve().parent))
    start = time.perf_counter()
    try:
        with default_scheduler(scheduler):
            runpy.run_path(str(script), run_name="__main__")
    finally:
        sys.argv = old_argv
        sys.path.remove(str(script.resolve().parent))
    elapsed = time.perf_counter() - start
    console.print(f"[green]ran[/] {script} on scheduler [bold]{scheduler}[/] in {elapsed:.2f} s")


if __name__ == "__main__":
    main()
