"""State shared by the pages: the database engine, the sidebar filters, and the caches.

Two kinds of cache, both shared by every browser session of the server process:

* Queries, effect tables, model fits and figures are memoised by what determines them (the
  filter, the effect settings, the model spec and :func:`version`), with ``st.cache_resource``:
  the objects are shared, not copied per call, so a re-run costs a dictionary look-up, and pages
  must not modify what they get (they don't).
* Heavy reports (the contradiction report; the per-question answers) are computed once per
  *evidence* version (new or reviewed submissions, not job progress) in a background worker: the
  first page run after a data change starts them for the default settings, so they are usually
  ready before anyone opens the page that shows them (issue 15).
"""

from __future__ import annotations

import enum
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

import pandas as pd
import streamlit as st

import evidence as ev
import metaanalysis as ma
from ui import identity, labels

__all__ = ["db_url", "engine", "version", "evidence_version", "distinct", "results", "stats", "studies", "claims", "current_filter",
           "filter_key", "effect_settings", "settings_key", "effects", "memo", "report", "prewarm", "answers", "contradictions", "contradictions_failed", "report_error", "sidebar",
           "SidebarScope", "unit", "PRECOMPUTE", "user_name", "EPS_STEPS", "FILTER_KEYS", "EFFECT_KEYS"]

FILTER_KEYS = ("f_dataset", "f_family", "f_adv", "f_threat", "f_attack", "f_source", "f_sparsity", "f_bits", "f_eps", "f_status")
EFFECT_KEYS = ("f_effect", "f_assume_n")
# Epsilon (Linf, [0, 1] pixel scale) in the steps papers use: k/255, so that 8/255 = 0.0313... is kept
# exactly by an "up to 8/255" filter (a slider on 0.001 steps dropped it).
# Heavy reports start in the background on a data change unless CREV_APP_PRECOMPUTE=0 (the headless
# tests, which each open a fresh database, turn it off and ask for a report where they need it).
PRECOMPUTE = os.environ.get("CREV_APP_PRECOMPUTE", "1").strip() != "0"
EPS_STEPS = [0.0] + [k / 255 for k in (0.5, 1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128)]
_EPS_TOL = 1e-9
log = logging.getLogger("crev.app")


def db_url() -> str:
    return ev.resolve_url(None)


@st.cache_resource(show_spinner="Opening the evidence database...")
def _engine(url: str):
    engine, _ = ev.init_database(url)
    return engine


def engine():
    return _engine(db_url())


def version() -> tuple:
    """Changes with any evidence or job change (for queries and anything cheap)."""
    return ev.data_version(engine())


def evidence_version(ver: tuple | None = None) -> tuple:
    """Changes when evidence is added or reviewed, not when a job makes progress (for heavy reports).
    The first two parts of :func:`evidence.data_version` are the submissions' (latest id, reviews)."""
    return tuple((ver or version())[:2])


@st.cache_resource(show_spinner=False, max_entries=256)
def _memo(kind: str, key: tuple, _fn: Callable):
    return _fn()


def memo(kind: str, key: tuple, fn: Callable):
    """``fn()`` computed once per (``kind``, ``key``) for the whole server; ``key`` must name every
    input of ``fn`` (filter, settings, spec, data version)."""
    return _memo(kind, (db_url(), *key), fn)


def distinct(column: str) -> list:
    return memo("distinct", (column, version()), lambda: ev.distinct_values(engine(), column))


def stats() -> dict:
    return memo("stats", (version(),), lambda: ev.stats(engine()))


def studies() -> pd.DataFrame:
    return memo("studies", (version(),), lambda: ev.list_studies(engine()))


def claims() -> pd.DataFrame:
    return memo("claims", (version(),), lambda: ev.list_claims(engine()))


def filter_key(f: ev.ResultFilter) -> tuple:
    return f.key()


def results(f: ev.ResultFilter | None = None) -> pd.DataFrame:
    """The results under ``f`` (the sidebar's by default). Shared: do not modify the frame."""
    f = f or current_filter()
    eng = engine()
    return memo("results", (filter_key(f), version()), lambda: ev.query_results(eng, f))


def effect_settings() -> ma.EffectSettings:
    s = st.session_state
    assume = "dataset" if str(s.get("f_assume_n", "dataset")).startswith("dataset") else None
    return ma.EffectSettings(measure=s.get("f_effect", "delta_robust"), assume_n=assume)


def settings_key(settings: ma.EffectSettings) -> tuple:
    return (settings.measure.value, settings.correlation, settings.assume_n)


def effects(f: ev.ResultFilter | None = None, settings: ma.EffectSettings | None = None) -> ma.EffectTable:
    f = f or current_filter()
    settings = settings or effect_settings()
    res = results(f)
    return memo("effects", (filter_key(f), settings_key(settings), version()), lambda: ma.compute_effects(res, settings))


# --- heavy reports: once per evidence version, in a background worker ---------------------------------------------------


class _Reports:
    """Futures of heavy reports by key; one worker, so a precompute never takes both cores."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="crev-report")
        self.futures: OrderedDict[tuple, Future] = OrderedDict()
        self.lock = threading.Lock()

    def submit(self, key: tuple, fn: Callable) -> Future:
        with self.lock:
            fut = self.futures.get(key)
            if fut is None or (fut.done() and fut.exception() is not None and time.time() - getattr(fut, "t", 0) > 30):
                fut = self.pool.submit(fn)
                fut.t = time.time()
                fut.add_done_callback(lambda f, key=key: _log_failure(key, f))
                self.futures[key] = fut
                while len(self.futures) > 16:
                    self.futures.popitem(last=False)
            self.futures.move_to_end(key)
            return fut


def _log_failure(key: tuple, fut: Future) -> None:
    """A background report that raised is a bug the page only summarises: log it with its traceback."""
    exc = None if fut.cancelled() else fut.exception()
    if exc is not None:
        log.error("background report %s failed", key[1], exc_info=(type(exc), exc, exc.__traceback__))


@st.cache_resource(show_spinner=False)
def _reports() -> _Reports:
    return _Reports()


def report(kind: str, key: tuple, fn: Callable, *, wait: bool = True, spinner: str = "Computing..."):
    """A heavy report: started in the background if needed. With ``wait``, its result (or its
    exception, raised); without, the result if it is ready and ``None`` while it runs or if it failed
    (see :func:`report_error`)."""
    full = (db_url(), kind, *key)
    if not wait and not PRECOMPUTE and full not in _reports().futures:
        return None  # not started: nothing computes in the background unless asked
    fut = _reports().submit(full, fn)
    if not wait:
        return fut.result() if fut.done() and fut.exception() is None else None
    if not fut.done():
        with st.spinner(spinner):
            return fut.result()
    return fut.result()


def report_error(kind: str, key: tuple) -> BaseException | None:
    """The exception a finished heavy report raised, if it did."""
    fut = _reports().futures.get((db_url(), kind, *key))
    return fut.exception() if fut is not None and fut.done() else None


def _contradiction_fn(url: str, settings: ma.EffectSettings, ver: tuple) -> Callable:
    def run():
        eng = _engine(url)
        table = ma.compute_effects(ev.query_results(eng, ev.ResultFilter()), settings)
        return ma.contradiction_report(table, ev.list_studies(eng), ev.list_claims(eng))
    return run


def contradictions(settings: ma.EffectSettings | None = None, *, wait: bool = True):
    """The contradiction report over all approved evidence (the report has its own question scopes;
    the sidebar's filters do not apply) for ``settings``; see :func:`report` for ``wait``."""
    settings = settings or effect_settings()
    ver = evidence_version()
    return report("contradictions", (settings_key(settings), ver), _contradiction_fn(db_url(), settings, ver), wait=wait,
                  spinner="Testing the candidate explanations (once per data change)...")


def _answers_fn(url: str, settings: ma.EffectSettings) -> Callable:
    def run():
        eng = _engine(url)
        return ma.answer(ma.compute_effects(ev.query_results(eng, ev.ResultFilter()), settings))
    return run


def contradictions_failed(settings: ma.EffectSettings | None = None) -> BaseException | None:
    settings = settings or effect_settings()
    return report_error("contradictions", (settings_key(settings), evidence_version()))


def answers(settings: ma.EffectSettings | None = None, *, wait: bool = True):
    """:func:`metaanalysis.answer` (what ``crev meta answer`` prints) over all approved evidence for ``settings``."""
    settings = settings or effect_settings()
    return report("answers", (settings_key(settings), evidence_version()), _answers_fn(db_url(), settings), wait=wait,
                  spinner="Answering each question from the evidence (once per data change)...")


def prewarm() -> None:
    """Start the heavy reports for the default settings of the current evidence version (answers
    first: the Overview shows them)."""
    if not PRECOMPUTE:
        return
    default = ma.EffectSettings(assume_n="dataset")
    answers(default, wait=False)
    contradictions(default, wait=False)


# --- the sidebar ------------------------------------------------------------------------------------------------------


def _eps_label(v: float) -> str:
    return labels.epsilon(v)


class SidebarScope(str, enum.Enum):
    """What of the shared sidebar a page uses (app.py declares it per page)."""
    filters = "filters"  # the result filters and the effect settings (Overview, Explore, Meta-analysis)
    effect = "effect"    # the effect settings only (Contradictions: its report has its own question scopes)
    none = "none"        # neither (Add evidence, Review, Replications)


def _keep(keys: tuple[str, ...]) -> None:
    """Keep the values of widgets a page does not draw: Streamlit drops a widget's state on a run
    that does not draw it, and re-assigning the value makes it session state of its own
    (https://docs.streamlit.io/develop/concepts/architecture/widget-behavior#widget-life-cycle)."""
    for k in keys:
        if k in st.session_state:
            st.session_state[k] = st.session_state[k]


def sidebar(scope: SidebarScope = SidebarScope.filters) -> None:
    """The page menu (Streamlit's navigation, drawn above), who the user is (:func:`ui.identity.sidebar`),
    and the shared filters a page uses; their values live in session state and persist across pages,
    including the pages that do not draw them."""
    identity.sidebar()
    sb = st.sidebar
    if scope is not SidebarScope.filters:
        _keep(FILTER_KEYS)
        if scope is SidebarScope.none:
            _keep(EFFECT_KEYS)
            sb.caption("The filters and effect settings (Overview, Explore, Meta-analysis) do not apply on this page; they keep their values.")
        else:
            sb.caption("The result filters (Overview, Explore, Meta-analysis) do not apply on this page; they keep their values.")
    if scope is SidebarScope.filters:
        _filters(sb)
    if scope is not SidebarScope.none:
        _effect_settings(sb)
    prewarm()


def _filters(sb) -> None:
    sb.header("Filters")
    sb.multiselect("Dataset", distinct("dataset"), key="f_dataset")
    sb.multiselect("Compression family", [f.value for f in ev.CompressionFamily], key="f_family", format_func=labels.label)
    sb.multiselect("Adversarial training", [a.value for a in ev.AdvTraining], key="f_adv", format_func=labels.label)
    sb.multiselect("Threat model", [t.value for t in ev.ThreatModel], key="f_threat", format_func=labels.label)
    sb.multiselect("Attack", [a.value for a in ev.Attack], key="f_attack", format_func=labels.label)
    sb.multiselect("Source", [k.value for k in ev.SourceKind], key="f_source", format_func=labels.label,
                   help="Literature rows come from papers; replication rows from controlled re-runs (crev replicate).")
    sb.slider("Sparsity (share of weights removed)", 0.0, 1.0, (0.0, 1.0), 0.01, key="f_sparsity",
              help="Narrowing it keeps only results with a stated sparsity.")
    sb.slider("Bit width (bits)", 1, 32, (1, 32), key="f_bits", help="Narrowing it keeps only results with a stated bit width.")
    sb.select_slider("Epsilon (Linf, in /255 of the pixel range)", EPS_STEPS, (EPS_STEPS[0], EPS_STEPS[-1]), key="f_eps",
                     format_func=_eps_label,
                     help="In the steps papers use (k/255, inclusive), so a row at 8/255 is kept by '0 – 8/255'. "
                          "Narrowing it keeps only results with a stated epsilon.")
    sb.radio("Review status", ["approved", "pending", "all"], key="f_status", horizontal=True,
             help="Analyses count approved entries; pending and rejected ones are shown for review.")


def _effect_settings(sb) -> None:
    sb.header("Effect sizes")
    sb.selectbox("Effect", [m.value for m in ma.EffectMeasure], key="f_effect", format_func=labels.label)
    sb.selectbox("Missing n_test", ["dataset (standard test-set size, flagged)", "none (exclude the row)"], key="f_assume_n",
                 help="A variance needs a sample size. Some studies do not state how many test images they used: by default the "
                      "dataset's standard test-set size is assumed for them, and every effect that uses it is flagged. "
                      "Choose 'none' to exclude them.")


def _range_or_none(key: str, full: tuple):
    v = st.session_state.get(key)
    return None if v is None or tuple(v) == tuple(full) else tuple(v)


def current_filter() -> ev.ResultFilter:
    s = st.session_state
    sp = _range_or_none("f_sparsity", (0.0, 1.0))
    bits = _range_or_none("f_bits", (1, 32))
    eps = _range_or_none("f_eps", (EPS_STEPS[0], EPS_STEPS[-1]))
    return ev.ResultFilter(
        datasets=s.get("f_dataset", []), families=s.get("f_family", []), adversarial_training=s.get("f_adv", []),
        threat_models=s.get("f_threat", []), attacks=s.get("f_attack", []), source_kinds=s.get("f_source", []),
        sparsity_min=sp[0] if sp else None, sparsity_max=sp[1] if sp else None,
        bits_min=bits[0] if bits else None, bits_max=bits[1] if bits else None,
        # a stored 8/255 may differ from k/255 in the last bits: the bounds are widened by 1e-9
        eps_min=eps[0] - _EPS_TOL if eps else None, eps_max=eps[1] + _EPS_TOL if eps else None, status=s.get("f_status", "approved"),
    )


def unit() -> str:
    return "log odds ratio" if st.session_state.get("f_effect") == "log_odds_ratio" else "percentage points"


# --- who acts ---------------------------------------------------------------------------------------------------------


def user_name() -> str:
    """Who acts in this browser session (:func:`ui.identity.current`), or ``""``. Never the server's
    login (that is whoever started the app)."""
    ident = identity.current()
    return ident.name if ident is not None else ""
