"""Collab Studio: the entry point. Defines the navigation and applies a shared run link (?run=ID) on any page."""
import streamlit as st

from ui import state, widgets

st.set_page_config(page_title="Collab Studio", page_icon=":material/movie:", layout="wide")
state.owner()
state.apply_run_param()

navigation = st.navigation({
    "Prepare": [
        st.Page("pages/data.py", title="Data", icon=":material/table:", default=True),
        st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    ],
    "Explore a run": [
        st.Page("pages/evaluate.py", title="Evaluate", icon=":material/query_stats:"),
        st.Page("pages/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
        st.Page("pages/biases.py", title="Biases", icon=":material/balance:"),
        st.Page("pages/recommend.py", title="Recommend", icon=":material/recommend:"),
    ],
    "Manage": [st.Page("pages/runs.py", title="Runs", icon=":material/history:")],
})
widgets.sidebar_status()
navigation.run()
