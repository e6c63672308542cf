"""The crev app: a router over the pages in ui/ (each page calls evidence, metaanalysis, replicate)."""

import logging

import streamlit as st
from streamlit.errors import FragmentHandledException

from ui import state

log = logging.getLogger("crev.app")

st.set_page_config(page_title="crev: compression vs adversarial robustness", layout="wide")

# Every page shows the page menu (st.navigation, in the sidebar) and who the user is; the scope says
# which of the shared filters the page uses (the others keep their values, see ui.state.sidebar).
Scope = state.SidebarScope
PAGES = [
    (st.Page("ui/overview.py", title="Overview", default=True), Scope.filters),
    (st.Page("ui/explore.py", title="Explore"), Scope.filters),
    (st.Page("ui/add.py", title="Add evidence"), Scope.none),
    (st.Page("ui/review.py", title="Review"), Scope.none),
    (st.Page("ui/meta.py", title="Meta-analysis"), Scope.filters),
    (st.Page("ui/contradictions.py", title="Contradictions"), Scope.effect),
    (st.Page("ui/replications.py", title="Replications"), Scope.none),
]
page = st.navigation([p for p, _ in PAGES])
# the chosen page's scope, found by the page itself (its url_path exists only inside a running app, and
# this module is also run bare, e.g. as a spawned process's __main__ after an AppTest)
scope = next((sc for p, sc in PAGES if p is page or getattr(p, "_title", None) == getattr(page, "_title", "")), Scope.filters)
# Streamlit's control flow (st.rerun, st.stop, st.switch_page) raises subclasses of BaseException,
# which `except Exception` never catches. FragmentHandledException is an Exception that says a
# fragment's error has already been shown: it passes through untouched.
try:
    state.sidebar(scope)
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
