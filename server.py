"""What `streamlit run server.py` serves: the app (app.py) plus team mode's sign-in endpoints (ui/routes.py).

`make run` and `make serve` start this file; `st.App` mounts the extra routes beside Streamlit's own.
"""
import streamlit as st

from ui.routes import ROUTES

app = st.App("app.py", routes=ROUTES)
