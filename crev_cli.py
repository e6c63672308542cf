"""The ``crev`` command: ``crev evidence|meta|replicate|app``.

Each engine owns its sub-commands; this module only mounts them (it sits above all three
packages, as the app does, so no engine imports another's CLI).

The sub-commands load lazily: ``crev --help`` lists them from the one-line help declared in
:data:`SUBCOMMANDS` and imports none of the engines, and ``crev meta ...`` imports the meta engine
only (never torch or the replication engine). A sub-command whose dependencies are missing fails
with the install hint its package gives, not with "No such command".
"""

from __future__ import annotations

import difflib
import importlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = ["SubCommand", "SUBCOMMANDS", "LazyGroup", "load_subcommand", "app", "main"]

# The packages of this project: an ImportError naming one of them is a bug to show with its
# traceback, while one naming a third-party module is a missing dependency to explain in one line.
_OWN_PACKAGES = frozenset({"crev_cli", "evidence", "metaanalysis", "replicate", "ui", "app"})


@dataclass(frozen=True)
class SubCommand:
    """A sub-command group that lives in an engine: its module (holding a Typer ``app``) and the
    one-line help ``crev --help`` shows without importing it (tests check it equals the app's own)."""

    module: str
    help: str


SUBCOMMANDS: dict[str, SubCommand] = {
    "evidence": SubCommand("evidence.cli", "The evidence database: studies, claims, results, review."),
    "meta": SubCommand("metaanalysis.cli", "Meta-analysis: pooled effects, heterogeneity, moderators, bias, contradictions."),
    "replicate": SubCommand("replicate.cli", "Replicate claims with controlled PyTorch runs (pruning, quantization, torchattacks)."),
}


def load_subcommand(name: str) -> Any:
    """Import the engine CLI behind ``crev NAME`` and return it as a command.

    A missing third-party dependency ends the program with one line (``error: ...``) that keeps
    the package's own install hint and exit status 2; an ImportError inside crev itself propagates.
    """
    sub = SUBCOMMANDS[name]
    try:
        module = importlib.import_module(sub.module)
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing in _OWN_PACKAGES:
            raise
        hint = "" if "pip install" in str(exc) else " (install crev's dependencies: make install, or pip install -e .)"
        typer.echo(f"error: crev {name} cannot start: {exc}{hint}", err=True)
        raise typer.Exit(2) from exc
    command = typer.main.get_group(module.app)
    command.name = name
    return command


class LazyGroup(TyperGroup):
    """A Typer group whose engine sub-commands are imported only when invoked.

    Listing them (``crev --help``) uses the declared help; resolving one (``crev meta run``) imports
    its module once.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False
        self._loaded: dict[str, Any] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*SUBCOMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in SUBCOMMANDS:
            return super().get_command(ctx, cmd_name)
        if cmd_name in self._loaded:
            return self._loaded[cmd_name]
        if self._listing:  # the help listing needs a name and a line of help, not the engine
            return TyperCommand(cmd_name, help=SUBCOMMANDS[cmd_name].help)
        self._loaded[cmd_name] = load_subcommand(cmd_name)
        return self._loaded[cmd_name]

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name = args[0] if args else ""
        known = self.list_commands(ctx)
        if name and not name.startswith("-") and name not in known:  # suggest among the lazy names too
            close = difflib.get_close_matches(name, known)
            if close:
                ctx.fail(f"No such command {name!r}. Did you mean {', '.join(repr(c) for c in close)}?")
        return super().resolve_command(ctx, args)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(cls=LazyGroup, no_args_is_help=True)


@app.callback()
def crev() -> None:
    """Compression vs adversarial robustness: evidence, meta-analysis, replication."""


@app.command("app")
def run_app(
    port: int = typer.Option(8501, help="Port on localhost."),
    db: Optional[str] = typer.Option(None, "--db", help="Database URL (default: $CREV_DB or the SQLite file)."),
    headless: bool = typer.Option(True, help="Do not open a browser."),
):
    """Start the Streamlit app on http://localhost:PORT."""
    env = dict(os.environ)
    if db:
        env["CREV_DB"] = db
    script = Path(__file__).with_name("app.py")
    cmd = [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
           "--server.headless", str(headless).lower(), "--browser.gatherUsageStats", "false"]
    raise typer.Exit(subprocess.call(cmd, env=env))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
