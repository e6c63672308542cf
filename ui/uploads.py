"""An uploaded file copied to a temporary file on disk in chunks, under a size cap, and deleted after use.

Streamlit's server refuses a request body above ``server.maxUploadSize`` (``.streamlit/config.toml``)
before the script sees it, and its ``UploadedFile`` holds the bytes the browser sent. A page then
never copies them whole (no ``getvalue()``, no ``read()`` of everything): :func:`spool` streams them
to a temporary file in :data:`CHUNK_BYTES` pieces, checks the cap again while it streams (so a
caller without Streamlit's check, or with a larger server limit, is refused at the first chunk past
the cap, with nothing left on disk), hashes what it wrote, and deletes the file when the ``with``
block ends, whatever happens in it. The importer then reads the file from disk.

Reference: Python's :func:`tempfile.mkstemp` (a file only this process's user can read, created
without races).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["CHUNK_BYTES", "MIB", "UploadTooLarge", "SpooledUpload", "spool"]

CHUNK_BYTES = 1 << 16  # 64 KiB per read and write
MIB = 1 << 20  # Streamlit's "MB" in server.maxUploadSize is 1024 * 1024 bytes


class UploadTooLarge(ValueError):
    """An upload above the cap; the message says so and what to do instead."""

    def __init__(self, name: str, limit_bytes: int, size: int | None = None):
        self.name, self.limit_bytes, self.size = name, limit_bytes, size
        seen = f"more than {limit_bytes / MIB:g} MB" if size is None else f"{size / MIB:.1f} MB"
        if size is not None and seen == f"{limit_bytes / MIB:.1f} MB":  # just over: "5.0 MB, above 5 MB" would read wrong
            seen = f"{size:,} bytes"
        super().__init__(f"{name} is {seen}, above the {limit_bytes / MIB:g} MB limit for uploads here; nothing was written. "
                         f"Import a larger file from the command line: `crev evidence import {name}`.")


@dataclass(frozen=True)
class SpooledUpload:
    """The upload on disk: its path (valid inside the ``with`` block only), size and SHA-256."""

    path: Path
    name: str
    size: int  # bytes
    sha256: str

    def open(self) -> BinaryIO:
        return open(self.path, "rb")


@contextmanager
def spool(source: BinaryIO, limit_bytes: int, *, name: str, suffix: str = ".csv", directory: str | Path | None = None
          ) -> Iterator[SpooledUpload]:
    """Copy ``source`` from its start to a temporary file in chunks, refusing it past ``limit_bytes``.

    Raises :class:`UploadTooLarge` before creating any file when ``source.size`` (Streamlit's
    ``UploadedFile``) is above the cap, and at the first chunk that passes it otherwise (that chunk is
    not written and the partial file is deleted). The file is deleted when the block exits.
    """
    size = getattr(source, "size", None)
    if isinstance(size, int) and size > limit_bytes:
        raise UploadTooLarge(name, limit_bytes, size)
    fd, tmp = tempfile.mkstemp(prefix="crev-upload-", suffix=suffix, dir=directory)
    path = Path(tmp)
    try:
        digest, n = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            source.seek(0)
            while chunk := source.read(CHUNK_BYTES):
                n += len(chunk)
                if n > limit_bytes:
                    raise UploadTooLarge(name, limit_bytes)
                digest.update(chunk)
                out.write(chunk)
        yield SpooledUpload(path, name, n, digest.hexdigest())
    finally:
        path.unlink(missing_ok=True)
