"""The crev app: a router over the pages in ui/ (each page calls evidence, metaanalysis, replicate)."""

import streamlit as st

from ui import state

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
try:
    state.sidebar()
    page.run()
except Exception as exc:  # the page shows what went wrong and what to do, never a traceback
    if type(exc).__name__ in ("StopException", "RerunException", "RerunData"):
        raise
    st.error(f"This page could not be shown: {exc}. Try widening the filters or reloading; "
             "if it persists, report it with the filters you used.")
