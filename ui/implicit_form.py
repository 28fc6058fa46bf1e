"""The Train page's settings for implicit feedback: who chose what (views, plays, purchases, or which items someone
rated), fitted by weighted alternating least squares (`cf_core.wals`) and judged by its top K.

A file with no ratings (or with counts) can only train this way; a ratings file can too ("a rating of at least 4
counts as liked"). The form's values are read by `config` into the TrainConfig that trains.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from cf_core.config import IMPLICIT_GRADIENT, TrainConfig
from cf_core.wals import ALPHA, REG, SWEEPS, default_factors
from ui import state
from ui.safe import lit

FEEDBACK_LABELS = {"explicit": "Predict ratings (how much someone will like an item)",
                   "implicit": "Recommend from what people chose (implicit feedback)"}
SETTINGS = ("feedback", "als_factors", "als_reg", "als_alpha", "als_sweeps", "like", "implicit_method",
            "implicit_lr", "implicit_wd", "implicit_epochs", "negatives")
METHODS = {"als": "Weighted alternating least squares (best)",
           "bce": "The lesson's dot product with a sigmoid, against random negatives (Adam)",
           "bpr": "Pairwise ranking, BPR (Adam)"}
HELP = {
    "feedback": "Ratings say how much someone liked an item; implicit feedback says only what they chose (viewed, "
                "played, bought, or rated at all). The second kind of model learns to put what someone will choose "
                "next at the top of their list, and is judged by that (its top-K figures on the Evaluate page). A "
                "file without ratings can only train this way.",
    "als_factors": "How many hidden traits each user and item gets. Leave it empty to choose from the data's size "
                   "(32 for MovieLens 100k's 80,000 interactions).",
    "als_reg": "How strongly the traits are held near zero; each person's and item's penalty grows with how many "
               "interactions they have. Raise it if the recommendations look random, lower it if everyone gets "
               "the same popular items.",
    "als_alpha": "How much more an interaction counts than a pair never seen: its weight is 1 + alpha x count. "
                 "With counts (plays, clicks), a higher alpha trusts the counts more.",
    "als_sweeps": "Passes of alternating least squares (each solves every user, then every item, exactly enough "
                  "to move on). 8 is plenty on MovieLens 100k.",
    "implicit_method": "Weighted ALS solves for everyone's traits exactly, a sweep at a time, and ranked best on "
                       "MovieLens 100k (NDCG@10 0.44 against 0.40 for the lesson's dot product with a sigmoid and "
                       "0.38 for BPR). The other two are the lesson's way: an optimizer (Adam) on a loss over what "
                       "people chose and items drawn at random as what they did not.",
    "implicit_lr": "How big each step of Adam is. Leave it empty for the default.",
    "implicit_wd": "How strongly the traits are held near zero. Leave it empty for the default.",
    "negatives": "How many items drawn at random count as not chosen, for each interaction.",
    "like": "Which ratings count as someone choosing an item. Empty: every rating (having rated a film says they "
            "watched it). 4 on a 1-5 scale: only what they liked.",
}


def feedback_choice(ds: state.Dataset) -> str:
    """What to learn: predict ratings or recommend from what people chose; fixed to the second for data without
    ratings. Returns "explicit" or "implicit"."""
    implicit_data = ds.ratings.feedback != "explicit"
    if implicit_data:
        st.session_state["feedback"] = "implicit"
    choice = st.radio("What to learn", list(FEEDBACK_LABELS), format_func=FEEDBACK_LABELS.get, key="feedback",
                      horizontal=True, disabled=implicit_data, help=HELP["feedback"])
    if implicit_data:
        st.caption("This data has no ratings" + (", only counts" if ds.ratings.feedback == "counts" else "")
                   + ": it trains as implicit feedback.")
    return choice


def draw(ds: state.Dataset, n: int) -> tuple[str, float]:
    """The implicit model's settings in three columns; returns the validation split and the share held back."""
    model_col, fit_col, data_col = st.columns(3)
    als = st.session_state.get("implicit_method", "als") == "als"  # (chosen in the next column)
    with model_col:
        st.subheader("Model")
        st.caption("Dot product of a user's and an item's hidden traits, no biases: a score from 0 (no) to 1 (will "
                   "choose), for ranking." if als else "The lesson's dot product with biases: its sigmoid is the "
                   "probability that the person chooses the item.")
        st.number_input("Number of factors", 1, 1024, value=None, step=1, key="als_factors",
                        placeholder=f"auto ({default_factors(n) if als else IMPLICIT_GRADIENT['n_factors']})",
                        help=HELP["als_factors"])
    with fit_col:
        st.subheader("How it learns")
        method = st.selectbox("Method", list(METHODS), format_func=METHODS.get, key="implicit_method",
                              help=HELP["implicit_method"])
        if method == "als":
            st.caption("Weighted alternating least squares (Hu, Koren and Volinsky 2008): every pair never seen "
                       "counts as a weak 0, every interaction as a stronger 1.")
            st.number_input("Regularization", 0.0, 1000.0, value=REG, step=0.05, format="%.3f", key="als_reg",
                            help=HELP["als_reg"])
            st.number_input("Confidence of an interaction (alpha)", 0.0, 1000.0, value=ALPHA, step=0.5,
                            key="als_alpha", help=HELP["als_alpha"])
            st.number_input("Sweeps", 1, 1000, value=SWEEPS, step=1, key="als_sweeps", help=HELP["als_sweeps"])
        else:
            d = IMPLICIT_GRADIENT
            st.number_input("Learning rate", 1e-6, 10.0, value=None, format="%.4f", key="implicit_lr",
                            placeholder=f"auto ({d['lr'][method]:g})", help=HELP["implicit_lr"])
            st.number_input("Weight decay", 0.0, 10.0, value=None, format="%.5f", key="implicit_wd",
                            placeholder=f"auto ({d['wd'][method]:g})", help=HELP["implicit_wd"])
            st.number_input("Epochs", 1, 1000, value=None, key="implicit_epochs",
                            placeholder=f"auto ({d['epochs']})")
            if method == "bce":
                st.number_input("Negatives per interaction", 1, 100, value=4, key="negatives",
                                help=HELP["negatives"])
        if ds.ratings.feedback == "explicit":
            lo, hi = ds.ratings.rating_scale
            st.number_input("A rating of at least this counts as chosen", float(lo), float(hi), value=None,
                            key="like", placeholder="every rating", help=HELP["like"])
    with data_col:
        st.subheader("Data")
        if ds.valid is not None:
            st.caption(f"Validation: your file {lit(ds.valid_name)} ({ds.valid.n_ratings:,} rows).")
        st.session_state.setdefault("split_how", "user")
        if st.session_state["split_how"] == "time" and "timestamp" not in ds.ratings.df:
            st.session_state["split_how"] = "user"
        labels = {"user": "Per user (a share of each person's)", "time": "Each user's latest",
                  "random": "Random"}
        how = st.selectbox("Validation split", [k for k in labels if k != "time" or "timestamp" in ds.ratings.df],
                           format_func=labels.get, key="split_how", disabled=ds.valid is not None,
                           help="Which interactions are held back to judge the top K: per user suits ranking best.")
        valid_frac = st.slider("Validation share", 0.05, 0.5, 0.2, 0.05, key="valid_frac",
                               disabled=ds.valid is not None)
        st.number_input("Seed", 0, 2**31 - 1, 42, key="seed")
        method = st.session_state.get("implicit_method", "als")
        st.text_input("Run name", "", placeholder=f"Implicit feedback ({method.upper()})", key="run_name")
    return how, valid_frac


def config(settings: Mapping[str, Any], counts: bool) -> TrainConfig:
    """The TrainConfig of the implicit form's values; `counts`: the data's rating column holds counts."""
    like = settings.get("like")
    method = settings.get("implicit_method", "als")
    if method != "als":  # the lesson's dot product with biases, by Adam
        return TrainConfig(feedback="implicit", model="dotbias", optimizer="adam", implicit_loss=method,
                           n_factors=settings.get("als_factors"), lr=settings.get("implicit_lr"),
                           wd=settings.get("implicit_wd"), epochs=settings.get("implicit_epochs"),
                           negatives=int(settings.get("negatives") or 4), like=None if like is None else float(like),
                           counts=counts, seed=settings.get("seed", 42))
    return TrainConfig(feedback="implicit", model="dot", n_factors=settings.get("als_factors"),
                       wd=settings.get("als_reg", REG), alpha=settings.get("als_alpha", ALPHA),
                       epochs=settings.get("als_sweeps", SWEEPS), like=None if like is None else float(like),
                       counts=counts, seed=settings.get("seed", 42))


def settings_rows(cfg: TrainConfig) -> list[tuple[str, Any]]:
    """The implicit fit's settings in words, for the Train page's summary."""
    if cfg.optimizer != "als":
        return [("What it learns", "what people choose (implicit feedback), judged by its top K"),
                ("Model", "Dot product with biases"), ("How it learns", METHODS[cfg.implicit_loss]),
                ("Hidden traits per user and item", cfg.n_factors), ("Learning rate", f"{cfg.lr:g}"),
                ("Weight decay", f"{cfg.wd:g}"), ("Epochs", cfg.epochs),
                *([("Negatives per interaction", cfg.negatives)] if cfg.implicit_loss == "bce" else []),
                ("Interactions per step (batch size)", f"{cfg.batch_size:,}"),
                ("Counts as chosen", "every row" if cfg.like is None else f"ratings of at least {cfg.like:g}"),
                ("Seed", cfg.seed)]
    return [("What it learns", "what people choose (implicit feedback), judged by its top K"),
            ("Model", "Dot product (no biases)"), ("How it learns", "Weighted alternating least squares"),
            ("Hidden traits per user and item", cfg.n_factors), ("Regularization", f"{cfg.wd:g} (grows with "
                                                                                   "each row's interactions)"),
            ("Confidence of an interaction", f"1 + {cfg.alpha:g} x count" if cfg.counts
             else f"1 + {cfg.alpha:g}"), ("Sweeps", cfg.epochs),
            ("Counts as chosen", "every row" if cfg.like is None else f"ratings of at least {cfg.like:g}"),
            ("Seed", cfg.seed)]
