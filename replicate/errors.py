"""The replication engine's user errors: what a person can fix (a spec, a dataset folder, a device, a
cluster setting). The CLI prints each as one ``error: ...`` line with exit status 2; any other
exception is a bug and keeps its traceback (ARCHITECTURE.md, "Errors").

Each concrete error also subclasses ``ValueError`` (what it replaced), and is defined beside the code
that raises it: :class:`replicate.jobs.spec.SpecError`, :class:`replicate.train.datasets.DatasetError`,
:class:`replicate.train.device.DeviceError`, :class:`replicate.jobs.executors.ClusterError`.
"""

from __future__ import annotations

__all__ = ["ReplicateError"]


class ReplicateError(Exception):
    """Base class of every error the replication engine raises on purpose for a user to act on."""
