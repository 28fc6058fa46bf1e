"""Collab Studio: the entry point. Decides who is asking, applies a share link (?share=TOKEN) or a run (?run=ID) on
any page, and builds the navigation that person may use.

Served by server.py (`make run` for local mode, `make serve` for team mode). The pages live in views/, not pages/:
a folder named pages/ beside the entry script would switch on Streamlit's automatic multipage mode, which serves a
link opened first after a restart without ever running this file.
"""
import streamlit as st

from cf_core.store import ShareError, StoreDamaged
from ui import auth, state, widgets

st.set_page_config(page_title="Collab Studio", page_icon=":material/movie:", layout="wide")

problem = auth.local_address_problem()
if problem:
    st.error(problem, icon=":material/lock:")
    st.stop()

try:
    who = state.who()
    state.bind_session(who)
    share_problem = None
    try:
        link = state.apply_share_param()
    except ShareError as exc:
        link, share_problem = None, str(exc)
    state.apply_run_param()

    EXPLORE = [
        st.Page("views/evaluate.py", title="Evaluate", icon=":material/query_stats:"),
        st.Page("views/embeddings.py", title="Embeddings", icon=":material/scatter_plot:"),
        st.Page("views/biases.py", title="Biases", icon=":material/balance:"),
        st.Page("views/recommend.py", title="Recommend", icon=":material/recommend:"),
    ]

    if who.signed_in:
        pages = {
            "Prepare": [
                st.Page("views/data.py", title="Data", icon=":material/table:", default=True),
                st.Page("views/train.py", title="Train", icon=":material/model_training:"),
            ],
            "Explore a run": EXPLORE,
            "Manage": [st.Page("views/runs.py", title="Runs", icon=":material/history:")],
        }
    elif link is not None:  # an anonymous visitor with an open share link: that run's explore pages and nothing else
        pages = {"Explore a shared run": EXPLORE,
                 "Account": [st.Page(widgets.signin_page, title="Sign in", icon=":material/login:", url_path="signin",
                                     default=True)]}  # the default page is served at "/" only, so not an explore page
    else:  # team mode, signed out: every page's address asks for sign-in, then comes back to that page
        pages = [st.Page(widgets.signin_page, title="Sign in", icon=":material/login:", url_path=path,
                         default=path == "signin")
                 for path in ("signin", "data", "train", "evaluate", "embeddings", "biases", "recommend", "runs")]

    navigation = st.navigation(pages, position="sidebar" if who.signed_in or link is not None else "hidden")
    if share_problem and "sign in" in share_problem and not who.signed_in:
        st.info(share_problem, icon=":material/login:")  # what to do next, not a failure
    elif share_problem:
        st.error(share_problem, icon=":material/link_off:")
    widgets.sidebar_status(who)
    navigation.run()
except StoreDamaged as exc:  # a damaged index: say so in words on every page, never a traceback
    st.error(str(exc), icon=":material/database:")
