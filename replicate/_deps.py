"""Import-time checks for the replication engine's optional heavy dependencies."""

from __future__ import annotations

__all__ = ["require_torchattacks", "TORCHATTACKS_HINT"]

TORCHATTACKS_HINT = (
    "torchattacks is not installed. Install it without its declared dependencies (it never imports them, and "
    "listing them pulls a CUDA torch): pip install --no-deps torchattacks==3.5.1  (make install does this)"
)


def require_torchattacks():
    """Return the torchattacks module or raise ImportError with the install command.

    Only ``torchattacks`` is imported: its wheel also installs a top-level ``robustbench`` package,
    which this project never imports.
    """
    try:
        import torchattacks
    except ImportError as exc:  # a broken install; tests/test_house_cli.py and test_house_jobs.py run it in a child process
        raise ImportError(TORCHATTACKS_HINT, name="torchattacks") from exc
    return torchattacks
