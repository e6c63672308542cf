"""Overview: what the database holds, the evidence map, and the headline answer."""

import streamlit as st

import metaanalysis as ma
from metaanalysis.plots import evidence_map_figure
from ui import state

st.title("Compression vs adversarial robustness")
st.caption("Does pruning or quantizing a network make it more or less robust to adversarial examples? "
           "Every number below comes from a public source or a controlled replication, with its provenance.")
s = state.stats()
c = st.columns(4)
c[0].metric("Studies", s["studies"])
c[1].metric("Coded claims", s["claims"])
c[2].metric("Results", s["results"])
c[3].metric("Pending review", s["pending_submissions"])
left, right = st.columns(2)
left.subheader("Results by compression family")
left.dataframe({"family": list(s["by_family"]), "results": list(s["by_family"].values())}, hide_index=True)
right.subheader("Results by threat model")
right.dataframe({"threat model": list(s["by_threat_model"]), "results": list(s["by_threat_model"].values())}, hide_index=True)

res = state.results()
table = state.effects()
st.subheader("Headline answer (current filters)")
h = ma.headline(table)
if h["ok"]:
    st.markdown(f"**{h['text']}**")
    if h.get("pi_low") is not None:
        st.caption(f"95% prediction interval for a new setting: {h['pi_low']:+.2f} to {h['pi_high']:+.2f} pp. "
                   + " ".join(n for n in h["notes"] if "ASSUMED" in n or "single study" in n))
else:
    st.info(h["text"] + " Widen the filters in the sidebar, or allow an assumed n_test under 'Effect sizes'.")
st.caption(f"{len(table)} effects; {len(table.excluded)} results could not give an effect (see Meta-analysis for the reasons).")

st.subheader("Evidence map")
if res.empty:
    st.info("No results match the filters. Clear some filters in the sidebar.")
else:
    st.plotly_chart(evidence_map_figure(ma.evidence_map(res, table)), width="stretch")
