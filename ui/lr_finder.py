"""The Train page's learning-rate finder: a short training whose learning rate grows exponentially, its loss curve,
and its suggestion to use (not offered for plain SGD, where the short sweep cannot tell)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from cf_core.config import TrainConfig
from cf_core.recommender import Recommender

from . import charts
from .train_form import OPTIMIZER_LABELS, Choice


def show(config: TrainConfig, train: pd.DataFrame, choice: Choice) -> None:
    """The finder in an expander (open while it has a result): Find, the curve, and Use the suggestion."""
    with st.expander("Learning-rate finder", expanded="lr_result" in st.session_state):
        st.caption("Trains briefly with a learning rate that grows exponentially and plots the loss: pick a rate where "
                   "the loss still falls steeply, before it blows up.")
        if not choice.has_lr:
            if choice.implicit:
                st.info("The finder is for the rating models. Weighted ALS has no learning rate; the implicit "
                        "methods that use Adam have a default one, set on the form above.")
            else:
                st.info("Gibbs sampling has no learning rate. Choose SGD, momentum, Adam or AdamW to use the "
                        "finder.")
        elif st.button("Find a learning rate", key="lr_find", icon=":material/search:"):
            with st.spinner("Sweeping learning rates…"):
                result = Recommender(config).lr_find(train)
            st.session_state["lr_result"] = (result.lrs, result.losses, result.suggestion)
        if choice.has_lr and "lr_result" in st.session_state:
            result_view(*st.session_state["lr_result"], choice)


def result_view(lrs: list[float], losses: list[float], suggestion: float, choice: Choice) -> None:
    """The sweep's curve; for Adam and AdamW its suggestion, a click away."""
    if choice.optimizer in ("sgd", "momentum"):
        # Measured on MovieLens 100k (README): the sweep's 100 steps end before plain SGD leaves its start, so its
        # suggestions (0.015 to 0.05) trained worse than the automatic rate, and the dot product without biases
        # learned nothing at all at them. The curve is still worth seeing; the suggestion is not offered.
        st.plotly_chart(charts.lr_finder(lrs, losses, None), config=charts.CONFIG, key="lr_chart")
        st.info(f"For {OPTIMIZER_LABELS[choice.optimizer]} this short sweep cannot tell where training will settle: "
                f"its suggestions trained worse than the automatic rate ({choice.auto_lr:g}) in every test, so leave "
                "the learning rate empty, or switch to Adam, whose suggestion is reliable.", icon=":material/info:")
    else:
        st.plotly_chart(charts.lr_finder(lrs, losses, suggestion), config=charts.CONFIG, key="lr_chart")
        st.button(f"Use the suggested learning rate ({suggestion:.3g})", key="use_suggestion",
                  on_click=use_suggestion, args=(suggestion,))


def use_suggestion(lr: float) -> None:
    """The suggestion into the Learning rate field (a callback: it runs before the field is drawn)."""
    st.session_state["lr"] = float(f"{lr:.3g}")
