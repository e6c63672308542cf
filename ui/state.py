"""State shared by the pages: the database engine, the sidebar filters, and cached queries.

Caches are keyed on :func:`evidence.data_version`, a token that changes whenever evidence is added,
reviewed, or a job progresses, so a change is visible on the next rerun and nothing stale is shown.
"""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

import evidence as ev
import metaanalysis as ma

FILTER_KEYS = ("f_dataset", "f_family", "f_adv", "f_threat", "f_attack", "f_sparsity", "f_bits", "f_eps", "f_status", "f_effect", "f_assume_n")


def db_url() -> str:
    return ev.resolve_url(None)


@st.cache_resource(show_spinner="Opening the evidence database...")
def _engine(url: str):
    engine, _ = ev.init_database(url)
    return engine


def engine():
    return _engine(db_url())


def version() -> tuple:
    return ev.data_version(engine())


@st.cache_data(show_spinner=False, max_entries=64)
def _distinct(url: str, column: str, ver) -> list:
    return ev.distinct_values(_engine(url), column)


def distinct(column: str) -> list:
    return _distinct(db_url(), column, version())


@st.cache_data(show_spinner=False, max_entries=64)
def _results(url: str, fkey: tuple, ver) -> pd.DataFrame:
    return ev.query_results(_engine(url), ev.ResultFilter(**dict(fkey)))


@st.cache_data(show_spinner=False, max_entries=32)
def _stats(url: str, ver) -> dict:
    return ev.stats(_engine(url))


@st.cache_data(show_spinner=False, max_entries=16)
def _studies(url: str, ver) -> pd.DataFrame:
    return ev.list_studies(_engine(url))


@st.cache_data(show_spinner=False, max_entries=16)
def _claims(url: str, ver) -> pd.DataFrame:
    return ev.list_claims(_engine(url))


def stats() -> dict:
    return _stats(db_url(), version())


def studies() -> pd.DataFrame:
    return _studies(db_url(), version())


def claims() -> pd.DataFrame:
    return _claims(db_url(), version())


def _range_or_none(key: str, full: tuple):
    v = st.session_state.get(key)
    return None if v is None or tuple(v) == tuple(full) else tuple(v)


def sidebar() -> None:
    """The shared filters; their values live in session state and persist across pages."""
    sb = st.sidebar
    sb.header("Filters")
    sb.multiselect("Dataset", distinct("dataset"), key="f_dataset")
    sb.multiselect("Compression family", [f.value for f in ev.CompressionFamily], key="f_family")
    sb.multiselect("Adversarial training", [a.value for a in ev.AdvTraining], key="f_adv")
    sb.multiselect("Threat model", [t.value for t in ev.ThreatModel], key="f_threat")
    sb.multiselect("Attack", [a.value for a in ev.Attack], key="f_attack")
    sb.slider("Sparsity range", 0.0, 1.0, (0.0, 1.0), 0.01, key="f_sparsity",
              help="Narrowing it keeps only results with a stated sparsity.")
    sb.slider("Bit width range", 1, 32, (1, 32), key="f_bits", help="Narrowing it keeps only results with a stated bit width.")
    sb.slider("Epsilon range (Linf, [0,1] pixel scale)", 0.0, 0.5, (0.0, 0.5), 0.001, format="%.3f", key="f_eps",
              help="Narrowing it keeps only results with a stated epsilon.")
    sb.radio("Review status", ["approved", "pending", "all"], key="f_status", horizontal=True,
             help="Analyses count approved entries; pending and rejected ones are shown for review.")
    sb.header("Effect sizes")
    sb.selectbox("Effect", [m.value for m in ma.EffectMeasure], key="f_effect")
    sb.selectbox("Missing n_test", ["dataset (standard test-set size, flagged)", "none (exclude the row)"], key="f_assume_n",
                 help="A variance needs a sample size. Three seed studies do not state n_test: by default the dataset's standard "
                      "test-set size is assumed for them, and every effect that uses it is flagged. Choose 'none' to exclude them.")


def current_filter() -> ev.ResultFilter:
    s = st.session_state
    sp = _range_or_none("f_sparsity", (0.0, 1.0))
    bits = _range_or_none("f_bits", (1, 32))
    eps = _range_or_none("f_eps", (0.0, 0.5))
    return ev.ResultFilter(
        datasets=s.get("f_dataset", []), families=s.get("f_family", []), adversarial_training=s.get("f_adv", []),
        threat_models=s.get("f_threat", []), attacks=s.get("f_attack", []),
        sparsity_min=sp[0] if sp else None, sparsity_max=sp[1] if sp else None,
        bits_min=bits[0] if bits else None, bits_max=bits[1] if bits else None,
        eps_min=eps[0] if eps else None, eps_max=eps[1] if eps else None, status=s.get("f_status", "approved"),
    )


def _fkey(f: ev.ResultFilter) -> tuple:
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in f.__dict__.items())


def results(f: ev.ResultFilter | None = None) -> pd.DataFrame:
    f = f or current_filter()
    return _results(db_url(), _fkey(f), version())


def effect_settings() -> ma.EffectSettings:
    s = st.session_state
    assume = "dataset" if str(s.get("f_assume_n", "dataset")).startswith("dataset") else None
    return ma.EffectSettings(measure=s.get("f_effect", "delta_robust"), assume_n=assume)


@st.cache_data(show_spinner="Computing effect sizes...", max_entries=32)
def _effects(url: str, fkey: tuple, settings_key: tuple, ver):
    settings = ma.EffectSettings(**dict(settings_key))
    return ma.compute_effects(_results(url, fkey, ver), settings)


def effects(f: ev.ResultFilter | None = None, settings: ma.EffectSettings | None = None) -> ma.EffectTable:
    f = f or current_filter()
    settings = settings or effect_settings()
    skey = (("measure", settings.measure.value), ("correlation", settings.correlation), ("assume_n", settings.assume_n))
    return _effects(db_url(), _fkey(f), skey, version())


def curator_secret() -> str | None:
    """The curator secret from Streamlit secrets (``curator_secret``) or ``CREV_CURATOR_SECRET``."""
    try:
        secret = st.secrets.get("curator_secret")
    except (FileNotFoundError, KeyError, AttributeError):
        secret = None
    except Exception as exc:  # st.secrets raises its own parse error type for a malformed secrets.toml
        st.warning(f"Could not read the app's secrets: {exc}")
        secret = None
    return secret or os.environ.get("CREV_CURATOR_SECRET") or None


def user_name() -> str:
    return st.session_state.get("user_name") or ev.whoami(None)


def unit() -> str:
    return "log odds ratio" if st.session_state.get("f_effect") == "log_odds_ratio" else "percentage points"
