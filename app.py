"""The crev app: a router over the pages in ui/ (each page calls evidence, metaanalysis, replicate)."""

import logging

import streamlit as st
from streamlit.errors import FragmentHandledException

from ui import state

log = logging.getLogger("crev.app")

st.set_page_config(page_title="crev: compression vs adversarial robustness", layout="wide")

PAGES = [
    st.Page("ui/overview.py", title="Overview", default=True),
    st.Page("ui/explore.py", title="Explore"),
    st.Page("ui/add.py", title="Add evidence"),
    st.Page("ui/review.py", title="Review"),
    st.Page("ui/meta.py", title="Meta-analysis"),
    st.Page("ui/contradictions.py", title="Contradictions"),
    st.Page("ui/replications.py", title="Replications"),
]
page = st.navigation(PAGES)
# Streamlit's control flow (st.rerun, st.stop, st.switch_page) raises subclasses of BaseException,
# which `except Exception` never catches. FragmentHandledException is an Exception that says a
# fragment's error has already been shown: it passes through untouched.
try:
    state.sidebar()
    page.run()
except FragmentHandledException:
    raise
except Exception as exc:
    # A page's expected errors (bad input, too few studies) are messages shown by the page itself;
    # anything reaching here is a bug. Log it with its traceback, tell the user what to do, and
    # re-raise so Streamlit shows its exception element (details redacted by client.showErrorDetails)
    # and a headless AppTest records it in `at.exception`.
    log.exception("page %s failed", page.title)
    st.error(f"This page could not be shown ({type(exc).__name__}); the details are in the server log. "
             "Try widening the filters or reloading; if it persists, report it with the filters you used.")
    raise
