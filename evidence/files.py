"""Reading a file someone handed us: a regular file only, and never more than a cap.

Every reader of outside input (results CSV, study and BibTeX files, RobustBench ``model_info`` JSON,
release packages, replication specs, CIFAR-10 batches) goes through :func:`read_regular_file`, so a
FIFO named ``x.json`` or ``spec.toml`` cannot block a command forever and a symlink to ``/dev/zero``
cannot be read whole into memory.

How: the file is opened with ``O_NONBLOCK`` (opening a FIFO for reading then returns at once instead
of waiting for a writer; POSIX ``open(2)``), the *opened* descriptor is checked with ``fstat`` to be a
regular file (``S_ISREG``; so a symlink is judged by what it points to, and there is no window between
a check and the open), and at most ``limit + 1`` bytes are read: one byte over the cap refuses it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import EvidenceError

__all__ = ["FileRefused", "read_regular_file", "MAX_FILE_BYTES", "MAX_SMALL_FILE_BYTES"]

MAX_FILE_BYTES = 256 * 2**20  # results CSV, release tables, CIFAR-10 batches (31 MB each)
MAX_SMALL_FILE_BYTES = 16 * 2**20  # study, spec, BibTeX, RobustBench entry, datapackage.json


class FileRefused(EvidenceError):
    """The file is missing, unreadable, not a regular file, or larger than the cap; the message names it."""


def _kind_of(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: str | Path, *, limit: int = MAX_FILE_BYTES, what: str = "file") -> bytes:
    """The bytes of ``path`` if it is (or links to) a regular file of at most ``limit`` bytes.

    :class:`FileRefused`, naming the path and the reason, otherwise: no such file, permission denied,
    a directory, FIFO, device or socket, or more than ``limit`` bytes (only ``limit + 1`` are read).
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise FileRefused(f"{path}: no such file (a {what} was expected)") from None
    except IsADirectoryError:
        raise FileRefused(f"{path}: is a directory, not a {what}") from None
    except PermissionError:
        raise FileRefused(f"{path}: permission denied (the {what} cannot be read)") from None
    except OSError as exc:
        raise FileRefused(f"{path}: cannot be read: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise FileRefused(f"{path}: is {_kind_of(mode)}, not a regular file (a {what} was expected): refused, reading it could never end")
        os.set_blocking(fd, True)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > limit:
            raise FileRefused(f"{path}: larger than {limit:,} bytes, the most a {what} may be: refused")
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefused(f"{path}: cannot be read: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
