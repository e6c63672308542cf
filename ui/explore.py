"""Explore: the filtered results with provenance, a study's detail view, charts and a download."""

import streamlit as st

import evidence as ev
from metaanalysis.plots import change_by_study_figure
from ui import state

st.title("Explore the evidence")
res = state.results()
if res.empty:
    st.info("No results match the filters. Clear some filters in the sidebar.")
    st.stop()
SHOW = ["study_id", "dataset", "architecture", "compression_family", "compression_level_text", "sparsity", "bits", "adversarial_training",
        "attack", "epsilon_text", "threat_model", "clean_acc_dense", "robust_acc_dense", "clean_acc_compressed", "robust_acc_compressed",
        "n_test", "provenance", "gradient_masking", "warnings", "url_or_path", "source_location", "review_status", "source_kind"]
view = res[SHOW].rename(columns={"provenance": "verbatim/derived"})
size = st.selectbox("Rows per page", [50, 200, 1000], index=0)
pages = max(1, (len(view) + size - 1) // size)
page = st.number_input(f"Page (of {pages})", 1, pages, 1)
st.caption(f"{len(view)} results; 'derived' numbers were computed from the source, not copied; "
           "'gradient_masking' marks replication results whose rigour checks failed.")
st.dataframe(view.iloc[(page - 1) * size: page * size], hide_index=True, width="stretch",
             column_config={"url_or_path": st.column_config.LinkColumn("source", display_text="source"),
                            "gradient_masking": st.column_config.CheckboxColumn("possible gradient masking")})
st.download_button("Download the filtered rows (CSV)", ev.to_interchange(res).to_csv(index=False).encode(), "crev-results.csv", "text/csv")

st.subheader("Robust-accuracy change per study")
table = state.effects()
if len(table) == 0:
    st.info("No effect sizes under the current filters (see the sidebar's 'Missing n_test' setting).")
else:
    tabs = st.tabs(["against sparsity", "against bit width"])
    for tab, x in zip(tabs, ("sparsity", "bits")):
        with tab:
            if table.effects[x].notna().any():
                st.plotly_chart(change_by_study_figure(table.effects, x, unit=state.unit()), width="stretch")
            else:
                st.info(f"No effect under the filters states a {x}.")

st.subheader("Study detail")
studies = state.studies()
sid = st.selectbox("Study", studies["study_id"].tolist(), key="explore_study")
row = studies.set_index("study_id").loc[sid]
st.markdown(f"**{row['title']}** — {row['authors']} ({row['year_text']}), {row['venue']}. {row['identifier']}")
st.markdown(f"Main claim ({row['main_direction']}): {row['main_claim']}")
cl = state.claims()
st.dataframe(cl[cl["study_id"] == sid][["question_id", "direction", "position", "conditions_note"]], hide_index=True, width="stretch")
st.dataframe(res[res["study_id"] == sid][SHOW], hide_index=True, width="stretch")
with st.expander("History of this study's entry"):
    st.dataframe(ev.history(state.engine(), sid), hide_index=True)
