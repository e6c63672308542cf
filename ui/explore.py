"""Explore: the filtered results with provenance (sorted over the whole filtered set, then paged),
a study's detail view, charts and a download."""

import pandas as pd
import streamlit as st

import evidence as ev
from metaanalysis.plots import change_by_study_figure
from ui import labels, state

st.title("Explore the evidence")
f = state.current_filter()
ver = state.version()
key = (state.filter_key(f), ver)
res = state.results(f)
if res.empty:
    st.info("No results match the filters. Clear some filters in the sidebar.")
    st.stop()

SHOW = ["study_id", "robust_change", "clean_change", "robust_acc_dense", "robust_acc_compressed", "clean_acc_dense", "clean_acc_compressed",
        "dataset", "architecture", "compression_family", "compression_level_text", "adversarial_training", "attack", "epsilon_text",
        "threat_model", "n_test", "source_kind", "provenance", "gradient_masking", "warnings", "url_or_path", "source_location",
        "review_status", "uid"]
SORTS = {"robust accuracy change (pp)": "robust_change", "clean accuracy change (pp)": "clean_change", "study": "study_id",
         "robust accuracy, compressed (%)": "robust_acc_compressed", "epsilon": "epsilon", "sparsity": "sparsity", "bit width": "bits",
         "test images": "n_test"}


def _view() -> pd.DataFrame:
    v = res.copy()
    v["robust_change"] = (v["robust_acc_compressed"] - v["robust_acc_dense"]).round(2)
    v["clean_change"] = (v["clean_acc_compressed"] - v["clean_acc_dense"]).round(2)
    return v


view = state.memo("explore_view", key, _view)
c = st.columns([2, 1, 1, 1])
sort_label = c[0].selectbox("Sort by", list(SORTS), key="ex_sort")
desc = c[1].toggle("Largest first", value=False, key="ex_desc")
size = c[2].selectbox("Rows per page", [50, 200, 1000], index=0, key="ex_size")
pages = max(1, (len(view) + size - 1) // size)
page = c[3].number_input(f"Page (of {pages})", 1, pages, 1, key="ex_page")
col = SORTS[sort_label]
ordered = state.memo("explore_sorted", (*key, col, desc),
                     lambda: view.sort_values([col, "study_id", "id"], ascending=[not desc, True, True], na_position="last", kind="stable"))
n_repl = int((res["source_kind"] == "replication").sum()) if "source_kind" in res else 0
st.caption(f"{len(view):,} results ({n_repl:,} from replications), sorted by {sort_label} over all of them "
           f"({'largest' if desc else 'smallest'} first; missing values last). Accuracies in %, changes in percentage points "
           "(compressed − dense). 'Numbers: computed from the source' were derived, not copied; 'possible gradient masking' marks "
           "replication results whose rigour checks failed.")
shown = ordered.iloc[(page - 1) * size: page * size]
st.dataframe(labels.frame(shown, SHOW), hide_index=True, width="stretch",
             column_config={labels.column("url_or_path"): st.column_config.LinkColumn("source", display_text="open"),
                            labels.column("gradient_masking"): st.column_config.CheckboxColumn("possible gradient masking"),
                            labels.column("uid"): st.column_config.TextColumn("id", help="the result's id (for a correction)")})
csv = state.memo("explore_csv", key, lambda: ev.to_interchange(res).to_csv(index=False).encode())
st.download_button("Download the filtered rows (CSV)", csv, "crev-results.csv", "text/csv")

st.subheader("Robust-accuracy change per study")
table = state.effects(f)
if len(table) == 0:
    st.info("No effect sizes under the current filters (see the sidebar's 'Missing n_test' setting).")
else:
    x = st.segmented_control("Against", ["sparsity", "bits"], default="sparsity", key="ex_x",
                             format_func={"sparsity": "sparsity", "bits": "bit width"}.get) or "sparsity"
    if table.effects[x].notna().any():
        fig = state.memo("change_fig", (*key, state.settings_key(state.effect_settings()), x, state.unit()),
                         lambda: change_by_study_figure(table.effects, x, unit=state.unit()))
        st.plotly_chart(fig, width="stretch")
    else:
        st.info(f"No effect under the filters states a {'bit width' if x == 'bits' else x}.")

st.subheader("Study detail")
studies = state.studies()
sid = st.selectbox("Study", studies["study_id"].tolist(), key="explore_study")
row = studies.set_index("study_id").loc[sid]
# the study's text as plain text: nothing in it is rendered as Markdown or HTML (no external images)
st.text(f"{row['title']}\n{row['authors']} ({row['year_text']}), {row['venue']}. {row['identifier']}")
st.text(f"Main claim ({labels.label(row['main_direction'])}): {row['main_claim']}")
cl = state.claims()
st.dataframe(labels.frame(cl[cl["study_id"] == sid], ["question_id", "direction", "position", "conditions_note", "uid"]), hide_index=True,
             width="stretch")
all_res = state.results(ev.ResultFilter(study_ids=[sid], status=f.status, include_quick=f.include_quick))
mine = view[view["study_id"] == sid]
if all_res.empty:
    st.info(f"{sid} has no numbers in the database: only its claims are coded (add its results with 'Add evidence').")
elif mine.empty:
    st.info(f"{sid} has {len(all_res):,} result(s), none under the current filters.")
else:
    st.caption(f"{len(mine):,} of its {len(all_res):,} results under the current filters.")
    st.dataframe(labels.frame(mine, SHOW), hide_index=True, width="stretch")
with st.expander("History of this study's entry"):
    st.dataframe(labels.frame(ev.history(state.engine(), sid)), hide_index=True)
