"""The ``crev meta ...`` command line of an analysis, rendered from its typed objects (the filter,
the effect settings, the :class:`~metaanalysis.analysis.AnalysisSpec`), so the CLI and the app
write the same header for the same analysis (an R script states the command that produced it)."""

from __future__ import annotations

import shlex

from ..analysis import AnalysisSpec
from ..models.structure import DEFAULT_RANDOM

__all__ = ["FILTER_OPTIONS", "command_for", "describe_filters", "filter_args"]

# ResultFilter field -> crev option (the fields the CLI exposes)
FILTER_OPTIONS = {"study_ids": "--study", "datasets": "--dataset", "families": "--family", "threat_models": "--threat",
                  "adversarial_training": "--adv", "attacks": "--attack", "eps_min": "--eps-min", "eps_max": "--eps-max",
                  "sparsity_min": "--sparsity-min", "sparsity_max": "--sparsity-max", "bits_min": "--bits-min", "bits_max": "--bits-max"}
_DEFAULT_SPEC = AnalysisSpec()
_APP_ONLY = ("source_kinds", "releases", "include_quick", "status")
_APP_ONLY_DEFAULTS = {"include_quick": False, "status": "approved"}


def _val(v) -> str:
    return str(getattr(v, "value", v))


def filter_args(filt) -> list[str]:
    """The CLI options that select the rows of ``filt`` (a ResultFilter; None: no filter)."""
    out: list[str] = []
    for name, opt in FILTER_OPTIONS.items():
        v = getattr(filt, name, None) if filt is not None else None
        if v is None or (isinstance(v, (list, tuple)) and not v):
            continue
        for x in (v if isinstance(v, (list, tuple)) else [v]):
            out += [opt, _val(x)]
    return out


def describe_filters(filt, settings=None) -> str:
    """The inclusion filters in words, with the filters the CLI lacks and the effect settings."""
    parts = []
    if filt is not None:
        for name in (*FILTER_OPTIONS, *_APP_ONLY):
            v = getattr(filt, name, None)
            if v is None or (isinstance(v, (list, tuple)) and not v) or _APP_ONLY_DEFAULTS.get(name, object()) == v:
                continue
            parts.append(f"{name} = {', '.join(map(_val, v)) if isinstance(v, (list, tuple)) else _val(v)}")
    if settings is not None:
        parts.append(f"effect {_val(settings.measure)}, correlation {settings.correlation:g}, assume n_test {settings.assume_n or 'none'}")
    return "; ".join(parts) or "none"


def _settings_args(settings) -> list[str]:
    if settings is None:
        return []
    out = []
    if _val(settings.measure) != "delta_robust":
        out += ["--effect", _val(settings.measure)]
    if settings.assume_n is not None:
        out += ["--assume-n", str(settings.assume_n)]
    if settings.correlation:
        out += ["--correlation", f"{settings.correlation:g}"]
    return out


def _spec_args(spec) -> list[str]:
    out = []
    if spec.model != "multilevel":
        out += ["--model", spec.model]
    if spec.method.upper() != _DEFAULT_SPEC.method.upper():
        out += ["--method", spec.method]
    if spec.mods:
        out += ["--mods", spec.mods]
    if spec.knha:
        out.append("--knha")
    if spec.test != "auto":
        out += ["--test", spec.test]
    if spec.model == "multilevel" and tuple(spec.random) != DEFAULT_RANDOM:
        out += ["--random", "/".join(spec.random)]
    if spec.robust is None:
        out += ["--robust", "none"]
    elif spec.robust != "auto":
        out += ["--robust", spec.robust_cluster, "--robust-kind", spec.robust]
    if spec.profile_ci:
        out.append("--profile-ci")
    if spec.omnibus != "HTZ":
        out += ["--omnibus", spec.omnibus]
    return out


def command_for(subcommand: str, spec=None, filt=None, settings=None, release: str | None = None) -> str:
    """``crev meta <subcommand> ...`` reproducing this analysis (spec options only for ``run``)."""
    args = ["crev", "meta", subcommand, *filter_args(filt), *_settings_args(settings)]
    if release:
        args += ["--release", release]
    if spec is not None:
        args += _spec_args(spec)
    return shlex.join(args)
