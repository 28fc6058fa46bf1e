"""The Train page's settings form: the model, optimizer and schedule widgets in three columns, the TrainConfig they
describe (`config_from_settings`, empty inputs left for `cf_core.config.resolve` to choose from the data), Reset to
defaults, and the table of the settings that apply to a fit."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st

from cf_core import config as engine_config
from cf_core.config import (
    DEFAULT_LAYER_WD,
    DEFAULT_LR,
    MODEL_NAMES,
    OPTIMIZERS,
    ORDINAL_MAX_LEVELS,
    PRETRAINED_LR_FACTOR,
    SCHEDULES,
    TrainConfig,
    burn_in,
    default_epochs,
    default_n_factors,
    default_optimizer,
    default_y_range,
)

from . import implicit_form, state, widgets
from .safe import lit

MODEL_LABELS = widgets.MODEL_LABELS
OPTIMIZER_LABELS = {"sgd": "SGD", "momentum": "SGD with momentum", "adam": "Adam", "adamw": "AdamW",
                    "gibbs": "Bayesian (Gibbs sampling)"}
SPLIT_LABELS = {"random": "Random", "user": "Per user", "time": "Each user's latest ratings"}

# One plain sentence per control (what it changes, when to touch it), then the expert detail.
HELP = {
    "model": "What kind of model learns the tastes. Dot product with biases is the lesson's and usually best; the "
             "neural net is slower and sometimes a little better.",
    "n_factors": "How many hidden traits the model gives each user and item. Leave it empty unless you are "
                 "experimenting: more can fit finer tastes but also noise.",
    "layers": "Sizes of the net's hidden layers, e.g. 64 or 128,64. Leave it unless you are experimenting.",
    "dropout": "How much the net ignores at random while training, to avoid memorising. Raise it if validation "
               "error climbs while training error falls.",
    "emb_dropout": "The same, for the users' and items' traits. Raise it if validation error climbs late.",
    "layer_wd": "How strongly the hidden layers are held back from extreme weights. Leave it empty. Detail: L2 on "
                "the hidden layers' weights, in the loss (l2 mode); with AdamW's decoupled mode the weight decay "
                "shrinks the layers too.",
    "use_y_range": "Keeps every prediction inside the rating scale. Leave it on. Detail: a sigmoid into y_range.",
    "y_lo": "The lowest prediction allowed. Leave it empty: a little below the lowest rating.",
    "y_hi": "The highest prediction allowed. Leave it empty: a little above the highest rating.",
    "lr": "How big a step the model takes while learning. Leave it empty, or use the learning-rate finder below; "
          "if the curves jump about, make it smaller.",
    "beta1": "How much Adam smooths its steps over time. Leave it at 0.9. Detail: the first-moment decay.",
    "beta2": "How much Adam smooths its step sizes. Leave it at 0.99. Detail: the second-moment decay.",
    "eps": "A safety margin in Adam's step sizes. Leave it empty. Detail: Adam's denominator guard, scaled to one "
           "rating's gradient, so rarely rated users and items move in proportion to their evidence.",
    "momentum": "How much each step keeps going in the direction of the last ones. Leave it at 0.9.",
    "wd": "How strongly the model is held back from fitting noise. Raise it if validation error climbs while "
          "training error falls. Detail: weight decay.",
    "wd_mode": "How that holding back is done. Leave it on auto. Detail: l2 adds a penalty to the loss; decoupled "
               "shrinks the weights directly (AdamW); auto is decoupled for AdamW.",
    "schedule": "How the step size changes during training. Leave it. Detail: one-cycle warms up then cools down.",
    "epochs": "How many passes over the ratings. Leave it empty; more takes longer and rarely helps much.",
    "batch_size": "How many ratings each step looks at. Leave it empty: chosen from the data's size.",
    "split_how": "Which ratings are held back to measure the model: at random, a share of each user's, or each "
                 "user's latest (the most honest test of predicting the future).",
    "valid_frac": "How many ratings are held back to measure the model (not used to train it).",
    "seed": "Makes a run repeatable: the same seed gives the same result.",
    "run_name": "A name to find this run by on the Runs page.",
}

DEFAULTS = TrainConfig()
SETTINGS = ("model", "n_factors", "layers", "dropout", "emb_dropout", "pretrain", "layer_wd", "use_y_range",
            "y_lo", "y_hi", "optimizer", "lr", "beta1", "beta2", "eps", "momentum", "wd", "wd_mode", "schedule",
            "epochs", "batch_size", "split_how", "valid_frac", "seed", "run_name", "implicit", "genres", "day",
            "output", *implicit_form.SETTINGS)


@dataclass(frozen=True)
class Choice:
    """What the rest of the page needs from the form, beyond the TrainConfig (`read_config`)."""

    model: str
    optimizer: str      # the optimizer that will run: the chosen one, or what auto picks
    auto_lr: float      # the learning rate an empty field gets (0 for Gibbs sampling)
    how: str            # the validation split: random, user or time
    valid_frac: float   # the share of ratings held back to validate
    implicit: bool = False  # implicit feedback (its own form, with its own learning rates)

    @property
    def gibbs(self) -> bool:
        return self.optimizer == "gibbs"

    @property
    def has_lr(self) -> bool:
        """Whether the fit has a learning rate (Gibbs sampling and weighted ALS have none)."""
        return self.optimizer not in ("gibbs", "als") and not self.implicit


def n_train(ds: state.Dataset) -> int:
    """How many ratings will train: the defaults are chosen from the training part, not the whole table."""
    if ds.valid is not None:
        return ds.ratings.n_ratings
    return int(ds.ratings.n_ratings * (1 - st.session_state.get("valid_frac", 0.2)))


def fit_method(model: str, optimizer: str | None, n: int) -> str:
    """The optimizer that will run: the chosen one, or what auto picks for this model and `n` training ratings."""
    return optimizer or default_optimizer(model, n)


def config_from_settings(settings: Mapping[str, Any], n: int, has_time: bool = True,
                         genres: bool = True, counts: bool = False) -> TrainConfig:
    """The TrainConfig that the form's values (`settings`, by widget key) describe for `n` training ratings; empty
    inputs stay None (chosen from the data by `resolve`). `has_time`, `genres`: whether the ratings have timestamps
    and the items genres (the day and genres blocks need them); `counts`: the data's rating column holds counts
    (implicit feedback)."""
    if settings.get("feedback") == "implicit":
        return implicit_form.config(settings, counts)
    model = settings["model"]
    optimizer = None if settings["optimizer"] == "auto" else settings["optimizer"]
    gibbs = fit_method(model, optimizer, n) == "gibbs"
    bayes = gibbs and model != "nn"
    kw = {}
    if model == "nn":
        kw.update(layers=tuple(int(x) for x in settings["layers"].replace(" ", "").split(",") if x),
                  dropout=(settings["dropout"],), emb_dropout=settings["emb_dropout"],
                  layer_wd=settings["layer_wd"], pretrain=settings["pretrain"])
    y_lo, y_hi = settings.get("y_lo"), settings.get("y_hi")
    if gibbs:  # a linear model: the (disabled) sigmoid and optimizer fields do not apply
        y_lo = y_hi = None
    return TrainConfig(
        model=model, n_factors=settings["n_factors"], use_y_range=settings.get("use_y_range", True),
        y_range=(y_lo, y_hi) if y_lo is not None and y_hi is not None else None,
        optimizer=optimizer, lr=settings["lr"],
        betas=(settings["beta1"], settings["beta2"]), eps=settings["eps"],
        momentum=settings["momentum"], wd=settings["wd"],
        wd_mode=None if settings["wd_mode"] == "auto" else settings["wd_mode"],
        schedule=settings["schedule"], epochs=settings["epochs"],
        batch_size=settings["batch_size"], seed=settings["seed"],
        implicit=bool(settings.get("implicit", True)) and bayes,
        # genres: on where the item table has them (None), unless turned off
        genres=None if bayes and genres and settings.get("genres", True) else False,
        day=bool(settings.get("day", False)) and bayes and has_time,
        output=settings.get("output", "auto") if bayes and settings.get("output", "auto") != "auto" else None,
        **kw)


def read_config(ds: state.Dataset) -> TrainConfig:
    """The TrainConfig the widgets describe."""
    return config_from_settings(st.session_state, n_train(ds), has_timestamps(ds), has_genres(ds),
                                ds.ratings.feedback == "counts")


def has_timestamps(ds: state.Dataset) -> bool:
    return "timestamp" in ds.ratings.df.columns and (ds.valid is None or "timestamp" in ds.valid.df.columns)


def has_genres(ds: state.Dataset) -> bool:
    return ds.items is not None and "genres" in ds.items.columns and bool(ds.items["genres"].fillna("").astype(str)
                                                                          .str.strip().ne("").any())


def reset_settings() -> None:
    """Every setting back to its default (the previous run's betas no longer carry into the next one)."""
    for key in SETTINGS:
        st.session_state.pop(key, None)
    st.session_state.pop("lr_result", None)


def settings_table(cfg: TrainConfig) -> pd.DataFrame:
    """The settings that apply to this fit, in words (a Gibbs fit has no rate, decay or batches; only the net has
    layers)."""
    if cfg.feedback == "implicit":
        rows = implicit_form.settings_rows(cfg)
        return pd.DataFrame({"setting": [r[0] for r in rows], "value": [str(r[1]) for r in rows]})
    gibbs, net = cfg.optimizer == "gibbs", cfg.model == "nn"
    rows = [("Model", MODEL_LABELS[cfg.model]), ("How it learns", OPTIMIZER_LABELS[cfg.optimizer])]
    rows.append(("Hidden traits per user and item", f"{cfg.user_factors} and {cfg.item_factors}" if net
                 else cfg.n_factors))
    if net:
        rows += [("Hidden layers", ", ".join(map(str, cfg.layers))), ("Dropout after each layer",
                 ", ".join(f"{d:g}" for d in cfg.dropout)), ("Dropout on the embeddings", f"{cfg.emb_dropout:g}"),
                 ("Weight decay on the hidden layers", f"{cfg.layer_wd:.3g}"),
                 ("Starts from a Bayesian fit", "yes" if cfg.pretrain else "no")]
    if gibbs:
        rows += [("Learns from what each person chose to rate", "yes" if cfg.implicit else "no"),
                 ("Learns from the items' genres", "yes" if cfg.genres else "no"),
                 ("Learns from the day of each rating", "yes" if cfg.day else "no"),
                 ("Ratings are predicted as", OUTPUT_LABELS[cfg.output or "auto"]),
                 ("Sweeps", f"{cfg.epochs} (the first {burn_in(cfg)} are burn-in, not averaged)"),
                 ("Predictions", "clipped to the rating scale")]
    else:
        rows += [("Learning rate", f"{cfg.lr:.3g}"), ("Schedule", cfg.schedule), ("Epochs", cfg.epochs),
                 ("Ratings per step (batch size)", f"{cfg.batch_size:,}"),
                 ("Weight decay", f"{cfg.wd:.3g} ({cfg.wd_mode})")]
        if cfg.optimizer in ("adam", "adamw"):
            rows += [("Adam's betas", f"{cfg.betas[0]:g}, {cfg.betas[1]:g}"), ("Adam's eps", f"{cfg.eps:.2g}")]
        if cfg.optimizer == "momentum":
            rows.append(("Momentum", f"{cfg.momentum:g}"))
        rows.append(("Predictions kept in", f"{cfg.y_range[0]:g} to {cfg.y_range[1]:g} (sigmoid)"
                     if cfg.use_y_range and cfg.y_range else "clipped to the rating scale"))
    rows.append(("Seed", cfg.seed))
    return pd.DataFrame({"setting": [r[0] for r in rows], "value": [str(r[1]) for r in rows]})


# ---------------------------------------------------------------- the widgets
def draw(ds: state.Dataset) -> Choice:
    """Reset to defaults, what the data is, and the three columns of settings (model, optimizer, schedule and data).
    The model column is finished after the optimizer's: its number of factors and its output range depend on it."""
    st.button("Reset to defaults", key="reset_settings", on_click=reset_settings, icon=":material/restart_alt:",
              help="Put every setting below back to its default; empty fields are then chosen from the data again.")
    unit = "interactions" if ds.ratings.feedback != "explicit" else "ratings"
    st.caption(f"Training on {lit(ds.name)}: {ds.ratings.n_ratings:,} {unit}, {ds.ratings.n_users:,} users, "
               f"{ds.ratings.n_items:,} items. Empty fields are chosen from the data.")
    n = n_train(ds)
    if implicit_form.feedback_choice(ds) == "implicit":
        how, valid_frac = implicit_form.draw(ds, n)
        return Choice("dot", "als", 0.0, how, valid_frac, implicit=True)
    model_col, opt_col, sched_col = st.columns(3)
    with model_col:
        st.subheader("Model")
        model = st.selectbox("Model", MODEL_NAMES, format_func=MODEL_LABELS.get, key="model", help=HELP["model"])
        factors_slot = st.empty()  # filled once the optimizer is known (Bayesian fits use fewer factors)
        if model == "nn":
            net_settings(n)
        y_slot = st.container()
    with opt_col:
        optimizer, auto_lr = optimizer_settings(model, n)
    with model_col:
        factors_slot.number_input("Number of factors", 1, 1024, value=None, step=1, key="n_factors",
                                  placeholder=f"auto ({default_n_factors(model, optimizer, n)})",
                                  help=HELP["n_factors"])
        with y_slot:
            output_settings(optimizer == "gibbs", ds.ratings.rating_scale, has_genres(ds), has_timestamps(ds))
    with sched_col:
        how, valid_frac = schedule_and_data(ds, model, optimizer, n)
    return Choice(model, optimizer, auto_lr, how, valid_frac)


def net_settings(n: int) -> None:
    """The neural net's own settings: its layers, dropout, pretraining and the layers' weight decay."""
    st.text_input("Hidden layers (comma separated sizes)", ",".join(map(str, DEFAULTS.layers)), key="layers",
                  help=HELP["layers"])
    st.slider("Dropout after each hidden layer", 0.0, 0.9, DEFAULTS.dropout[0], 0.05, key="dropout",
              help=HELP["dropout"])
    st.slider("Dropout on the embeddings", 0.0, 0.9, DEFAULTS.emb_dropout, 0.05, key="emb_dropout",
              help=HELP["emb_dropout"])
    # The module's switch, read when drawn (not bound at import): a test moves it.
    pretrain = st.checkbox("Start the embeddings from a Bayesian fit", n < engine_config.GIBBS_MAX_RATINGS,
                           key="pretrain",
                           help="Gives the net a head start from a quick, accurate simpler model. Leave it on. "
                                "Detail: first fit the dot product with biases by Gibbs sampling, with what each "
                                "person rated (about ten seconds on MovieLens 100k), then start each user's and "
                                "item's embedding from its factors and "
                                "bias, and train the net from there at a tenth of the usual learning rate. The net "
                                "then begins from what the data already says instead of from noise.")
    st.number_input("Weight decay on the hidden layers", 0.0, 10.0, value=None, format="%g", key="layer_wd",
                    placeholder=f"auto ({DEFAULT_LAYER_WD[bool(pretrain)]:g} on MovieLens' spread)",
                    help=HELP["layer_wd"])


def optimizer_settings(model: str, n: int) -> tuple[str, float]:
    """The optimizer column; returns the optimizer that will run and the learning rate an empty field gets."""
    st.subheader("Optimizer")
    choice = st.selectbox(
        "Optimizer", ("auto", *(o for o in OPTIMIZERS if model != "nn" or o != "gibbs")), key="optimizer",
        format_func=lambda o: (f"Auto: {OPTIMIZER_LABELS[fit_method(model, None, n)]}" if o == "auto"
                               else OPTIMIZER_LABELS[o]),
        help="How the model learns. Leave it on Auto, which picks the most accurate for the data. Detail: "
             "Bayesian (Gibbs sampling) averages many draws of the weights from their posterior instead of optimizing "
             "one setting; it learns its priors and noise level from the data, so it has no learning rate or weight "
             "decay, "
             "and it fits the linear dot product (no sigmoid). Auto picks it for the dot products under 2M ratings, "
             "where it predicts best, and Adam otherwise.")
    optimizer = fit_method(model, None if choice == "auto" else choice, n)
    gibbs, adam = optimizer == "gibbs", optimizer in ("adam", "adamw")
    pretrained = model == "nn" and st.session_state.get("pretrain")
    auto_lr = DEFAULT_LR.get(optimizer, 0) * (PRETRAINED_LR_FACTOR if pretrained else 1)
    st.number_input("Learning rate", 0.0, 100.0, value=None, format="%g", key="lr", disabled=gibbs,
                    placeholder="none for Gibbs sampling" if gibbs else f"auto ({auto_lr:g})", help=HELP["lr"])
    b1, b2 = st.columns(2)
    b1.number_input("beta1", 0.0, 0.9999, DEFAULTS.betas[0], 0.01, format="%g", key="beta1", disabled=not adam,
                    help=HELP["beta1"])
    b2.number_input("beta2", 0.0, 0.9999, DEFAULTS.betas[1], 0.001, format="%g", key="beta2", disabled=not adam,
                    help=HELP["beta2"])
    st.number_input("eps", 0.0, 1.0, value=None, format="%g", placeholder="auto (about one rating's gradient)",
                    key="eps", disabled=not adam, help=HELP["eps"])
    st.number_input("Momentum", 0.0, 0.999, DEFAULTS.momentum, 0.05, format="%g", key="momentum",
                    disabled=optimizer != "momentum", help=HELP["momentum"])
    st.number_input("Weight decay", 0.0, 100.0, value=None, format="%g", placeholder="auto", key="wd", disabled=gibbs,
                    help="Gibbs sampling learns its priors from the data instead." if gibbs else HELP["wd"])
    st.selectbox("Weight decay mode", ["auto", "l2", "decoupled"], key="wd_mode", disabled=gibbs,
                 help=HELP["wd_mode"])
    return optimizer, auto_lr


BLOCK_HELP = {
    "implicit": "Also learns from which items each person rated (and who rated each item), not only from the "
                "ratings they gave: on MovieLens 100k it predicts better (0.885 against 0.903) and takes about "
                "five times as long (18 s against 4 s here). On by default, for the Bayesian fit of the dot "
                "products only. Detail: Bayesian SVD++ both ways, from the training ratings only.",
    "genres": "Also learns from the items' genres in the item file (genres separated by |): items of a genre "
              "share some of their traits, which helps most for items with few ratings. On MovieLens 100k, with "
              "the box above: 0.882 against 0.885. On by default where the items have genres.",
    "day": "Also learns from the day each rating was given: what is rated the same day shares a mood. Off by "
           "default: on MovieLens 100k it predicted a little better (0.8818 against 0.8822) in a little more time "
           "(21 s against 20 s), and 0.8798 with 300 sweeps. Needs a timestamp column (in the validation file "
           "too, when there is one).",
}
BLOCK_LABELS = {"implicit": "Learn from what each person chose to rate", "genres": "Learn from the items' genres",
                "day": "Learn from when each rating was given (the day)"}


OUTPUT_LABELS = {"auto": "auto (ordered levels for star ratings)",
                 "ordinal": "ordered levels (ordered probit)", "gaussian": "a number with normal noise (Gaussian)"}
OUTPUT_HELP = ("How the Bayesian fit thinks of a rating. Ordered levels: a rating is one of a few ordered values "
               "(1 to 5 stars, say), and the fit learns where the boundaries between them lie; the prediction is "
               "the expected rating. On MovieLens 100k it predicted better than a number with normal noise (validation "
               "RMSE 0.8789 against 0.8822; lower is better) in about 1.5 times the time (12 s against 8 s), and "
               "better on the other splits and seeds tried. Auto chooses it where the "
               f"ratings take 2 to {ORDINAL_MAX_LEVELS} values, else the Gaussian.")


def output_settings(gibbs: bool, rating_scale: tuple[float, float], genres: bool = True, time: bool = True) -> None:
    """What the Bayesian fit learns from, and the range predictions are kept in (neither applies to every fit: the
    ones that do not are shown off, and the person's choice for them is kept). `genres`, `time`: whether the data
    has the items' genres and the ratings' timestamps."""
    available = {"implicit": True, "genres": genres, "day": time}
    missing = {"implicit": "", "genres": " This data's items have no genres.",
               "day": " These ratings (or the validation file) have no timestamps."}
    for key, label in BLOCK_LABELS.items():
        if gibbs and available[key]:
            st.checkbox(label, key != "day", key=key, help=BLOCK_HELP[key])
        else:  # shown off, not the (kept) choice for the Bayesian fit
            st.checkbox(label, False, disabled=True, key=f"{key}_off", help=BLOCK_HELP[key] + missing[key])
    if gibbs:
        st.selectbox("Ratings are predicted as", list(OUTPUT_LABELS), key="output", format_func=OUTPUT_LABELS.get,
                     help=OUTPUT_HELP)
    else:  # shown off, not the (kept) choice for the Bayesian fit
        st.selectbox("Ratings are predicted as", ["gaussian"], key="output_off", format_func=OUTPUT_LABELS.get,
                     disabled=True, help=OUTPUT_HELP + " For the Bayesian fit only.")
    if gibbs:  # shown off, not the (kept) choice for the optimizers
        st.checkbox("Squash predictions into y_range (sigmoid)", False, disabled=True, key="use_y_range_gibbs",
                    help="Gibbs sampling fits the linear dot product; predictions are clipped to the rating scale.")
    else:
        st.checkbox("Squash predictions into y_range (sigmoid)", True, key="use_y_range", help=HELP["use_y_range"])
    y1, y2 = st.columns(2)
    auto_lo, auto_hi = default_y_range(*rating_scale)
    y1.number_input("y_range low", value=None, format="%g", key="y_lo", disabled=gibbs,
                    placeholder="none" if gibbs else f"auto ({auto_lo:g})", help=HELP["y_lo"])
    y2.number_input("y_range high", value=None, format="%g", key="y_hi", disabled=gibbs,
                    placeholder="none" if gibbs else f"auto ({auto_hi:g})", help=HELP["y_hi"])


def schedule_and_data(ds: state.Dataset, model: str, optimizer: str, n: int) -> tuple[str, float]:
    """The schedule, the validation split and the run's name; returns the split and the share held back."""
    gibbs = optimizer == "gibbs"
    st.subheader("Schedule and data")
    st.selectbox("Schedule", SCHEDULES, key="schedule", disabled=gibbs, help=HELP["schedule"])
    st.number_input("Epochs" if not gibbs else "Sweeps (epochs)", 1, 10000, value=None, step=1, key="epochs",
                    placeholder=f"auto ({default_epochs(optimizer, n)}"
                                + (f", the first {DEFAULTS.burn_in} not averaged)" if gibbs else ")"),
                    help=HELP["epochs"])
    st.number_input("Batch size", 1, 1 << 22, value=None, step=256, placeholder="auto", key="batch_size",
                    disabled=gibbs, help=HELP["batch_size"])
    timed = "timestamp" in ds.ratings.df
    if ds.valid is not None:
        st.caption(f"Validation: your file {lit(ds.valid_name)} ({ds.valid.n_ratings:,} ratings); training uses every "
                   "rating of the ratings file.")
    if not timed and st.session_state.get("split_how") == "time":
        st.session_state["split_how"] = "random"  # another dataset had times; this one has none
    how = st.selectbox("Validation split", [k for k in SPLIT_LABELS if timed or k != "time"],
                       format_func=SPLIT_LABELS.get, key="split_how", disabled=ds.valid is not None,
                       help=HELP["split_how"] + ("" if timed else " Each user's latest ratings needs a time column, "
                                                 "and this data has none: add a timestamp column to split by time."))
    valid_frac = st.slider("Validation share", 0.05, 0.5, 0.2, 0.05, key="valid_frac", disabled=ds.valid is not None,
                           help=HELP["valid_frac"])
    st.number_input("Seed", 0, 2**31 - 1, 42, key="seed", help=HELP["seed"])
    st.text_input("Run name", "", placeholder=MODEL_LABELS[model], key="run_name", help=HELP["run_name"])
    return how, valid_frac
