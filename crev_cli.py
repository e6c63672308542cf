"""The ``crev`` command: ``crev evidence|meta|replicate|app``.

Each engine owns its sub-commands; this module only mounts them (it sits above all three
packages, as the app does, so no engine imports another's CLI).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

import typer

from evidence.cli import app as evidence_app

__all__ = ["app", "main"]

app = typer.Typer(help="Compression vs adversarial robustness: evidence, meta-analysis, replication.", no_args_is_help=True)
app.add_typer(evidence_app, name="evidence")

try:  # the engines that have landed mount themselves
    from metaanalysis.cli import app as meta_app

    app.add_typer(meta_app, name="meta")
except ImportError as exc:  # pragma: no cover - only when a dependency is missing
    if getattr(exc, "name", "") and not str(exc.name).startswith("metaanalysis"):
        raise
try:
    from replicate.cli import app as replicate_app

    app.add_typer(replicate_app, name="replicate")
except ImportError as exc:  # pragma: no cover
    if getattr(exc, "name", "") and not str(exc.name).startswith("replicate"):
        raise


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
