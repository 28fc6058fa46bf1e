"""Train: choose the model, optimizer and schedule, find a learning rate, and train in the background with live curves."""
import pandas as pd
import streamlit as st

from cf_core.config import (
    DEFAULT_LAYER_WD,
    DEFAULT_LR,
    GIBBS_MAX_RATINGS,
    MODEL_NAMES,
    OPTIMIZERS,
    PRETRAINED_LR_FACTOR,
    SCHEDULES,
    TooCostly,
    TrainConfig,
    check_cost,
    data_stats,
    default_epochs,
    default_n_factors,
    default_optimizer,
    default_y_range,
    resolve,
)
from cf_core.recommender import Recommender
from cf_core.splits import TRAIN_COLUMNS, cold_count, split_for_training
from ui import charts, job_view, state, widgets
from ui.safe import lit

MODEL_LABELS = widgets.MODEL_LABELS
OPTIMIZER_LABELS = {"sgd": "SGD", "momentum": "SGD with momentum", "adam": "Adam", "adamw": "AdamW",
                    "gibbs": "Bayesian (Gibbs sampling)"}
SPLIT_LABELS = {"random": "Random", "user": "Per user", "time": "Each user's latest ratings"}

st.title("Train")
job = job_view.current()
ds = widgets.require_dataset()
if ds is None:
    job_view.show(job)  # a job started before a reload still shows, with no dataset picked
    st.stop()
if job is not None:  # the job (running, or its result) is what the person watches: on top, not below the fold
    job_view.show(job)
    st.divider()


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
# The sigmoid checkbox is not drawn while the Bayesian fit is chosen; writing its value back keeps the user's choice
# for when they return to an optimizer (Streamlit forgets the state of a widget that a run does not draw).
if "use_y_range" in st.session_state:
    st.session_state["use_y_range"] = st.session_state["use_y_range"]


def read_config() -> TrainConfig:
    """The TrainConfig the widgets describe; empty inputs stay None (chosen from the data by `resolve`)."""
    model = st.session_state["model"]
    optimizer = None if st.session_state["optimizer"] == "auto" else st.session_state["optimizer"]
    kw = {}
    if model == "nn":
        kw.update(layers=tuple(int(x) for x in st.session_state["layers"].replace(" ", "").split(",") if x),
                  dropout=(st.session_state["dropout"],), emb_dropout=st.session_state["emb_dropout"],
                  layer_wd=st.session_state["layer_wd"], pretrain=st.session_state["pretrain"])
    y_lo, y_hi = st.session_state.get("y_lo"), st.session_state.get("y_hi")
    if fit_method(model, optimizer) == "gibbs":  # a linear model: the (disabled) sigmoid and optimizer fields do not apply
        y_lo = y_hi = None
    return TrainConfig(
        model=model, n_factors=st.session_state["n_factors"], use_y_range=st.session_state.get("use_y_range", True),
        y_range=(y_lo, y_hi) if y_lo is not None and y_hi is not None else None,
        optimizer=optimizer, lr=st.session_state["lr"],
        betas=(st.session_state["beta1"], st.session_state["beta2"]), eps=st.session_state["eps"],
        momentum=st.session_state["momentum"], wd=st.session_state["wd"],
        wd_mode=None if st.session_state["wd_mode"] == "auto" else st.session_state["wd_mode"],
        schedule=st.session_state["schedule"], epochs=st.session_state["epochs"],
        batch_size=st.session_state["batch_size"], seed=st.session_state["seed"],
        implicit=bool(st.session_state.get("implicit", True)) and fit_method(model, optimizer) == "gibbs" and model != "nn",
        **kw)


def n_train() -> int:
    """How many ratings will train: the defaults are chosen from the training part, not the whole table."""
    if ds.valid is not None:
        return ds.ratings.n_ratings
    return int(ds.ratings.n_ratings * (1 - st.session_state.get("valid_frac", 0.2)))


def fit_method(model: str, optimizer: str | None) -> str:
    """The optimizer that will run: the chosen one, or what auto picks for this model and data."""
    return optimizer or default_optimizer(model, n_train())


SETTINGS = ("model", "n_factors", "layers", "dropout", "emb_dropout", "pretrain", "layer_wd", "use_y_range",
            "y_lo", "y_hi", "optimizer", "lr", "beta1", "beta2", "eps", "momentum", "wd", "wd_mode", "schedule",
            "epochs", "batch_size", "split_how", "valid_frac", "seed", "run_name", "implicit")


def reset_settings() -> None:
    """Every setting back to its default (the previous run's betas no longer carry into the next one)."""
    for key in SETTINGS:
        st.session_state.pop(key, None)
    st.session_state.pop("lr_result", None)


def settings_table(cfg: TrainConfig) -> pd.DataFrame:
    """The settings that apply to this fit, in words (a Gibbs fit has no rate, decay or batches; only the net has
    layers)."""
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
                 ("Sweeps", f"{cfg.epochs} (the first 20 are burn-in, not averaged)"),
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


def use_suggestion(lr: float) -> None:
    st.session_state["lr"] = float(f"{lr:.3g}")


lo, hi = ds.ratings.rating_scale
st.button("Reset to defaults", key="reset_settings", on_click=reset_settings, icon=":material/restart_alt:",
          help="Put every setting below back to its default; empty fields are then chosen from the data again.")
st.caption(f"Training on {lit(ds.name)}: {ds.ratings.n_ratings:,} ratings, {ds.ratings.n_users:,} users, "
           f"{ds.ratings.n_items:,} items. Empty fields are chosen from the data.")

model_col, opt_col, sched_col = st.columns(3)
with model_col:
    st.subheader("Model")
    model = st.selectbox("Model", MODEL_NAMES, format_func=MODEL_LABELS.get, key="model", help=HELP["model"])
    factors_slot = st.empty()  # filled once the optimizer is known (Bayesian fits use fewer factors)
    if model == "nn":
        st.text_input("Hidden layers (comma separated sizes)", ",".join(map(str, DEFAULTS.layers)), key="layers", help=HELP["layers"])
        st.slider("Dropout after each hidden layer", 0.0, 0.9, DEFAULTS.dropout[0], 0.05, key="dropout", help=HELP["dropout"])
        st.slider("Dropout on the embeddings", 0.0, 0.9, DEFAULTS.emb_dropout, 0.05, key="emb_dropout", help=HELP["emb_dropout"])
        pretrain = st.checkbox("Start the embeddings from a Bayesian fit", n_train() < GIBBS_MAX_RATINGS,
                               key="pretrain",
                               help="Gives the net a head start from a quick, accurate simpler model. Leave it on. "
                                    "Detail: first fit the dot product with biases by Gibbs sampling, with what each "
                                    "person rated (about ten seconds on MovieLens 100k), then start each user's and item's embedding from its factors and "
                                    "bias, and train the net from there at a tenth of the usual learning rate. The net "
                                    "then begins from what the data already says instead of from noise.")
        st.number_input("Weight decay on the hidden layers", 0.0, 10.0, value=None, format="%g", key="layer_wd",
                        placeholder=f"auto ({DEFAULT_LAYER_WD[bool(pretrain)]:g} on MovieLens' spread)",
                        help=HELP["layer_wd"])
    y_slot = st.container()
with opt_col:
    st.subheader("Optimizer")
    choice = st.selectbox(
        "Optimizer", ("auto", *(o for o in OPTIMIZERS if model != "nn" or o != "gibbs")), key="optimizer",
        format_func=lambda o: f"Auto: {OPTIMIZER_LABELS[fit_method(model, None)]}" if o == "auto" else OPTIMIZER_LABELS[o],
        help="How the model learns. Leave it on Auto, which picks the most accurate for the data. Detail: "
             "Bayesian (Gibbs sampling) averages many draws of the weights from their posterior instead of optimizing one "
             "setting; it learns its priors and noise level from the data, so it has no learning rate or weight decay, "
             "and it fits the linear dot product (no sigmoid). Auto picks it for the dot products under 2M ratings, "
             "where it predicts best, and Adam otherwise.")
    optimizer = fit_method(model, None if choice == "auto" else choice)
    gibbs = optimizer == "gibbs"
    auto_lr = DEFAULT_LR.get(optimizer, 0) * (PRETRAINED_LR_FACTOR if model == "nn" and st.session_state.get("pretrain") else 1)
    st.number_input("Learning rate", 0.0, 100.0, value=None, format="%g", key="lr", disabled=gibbs,
                    placeholder="none for Gibbs sampling" if gibbs else f"auto ({auto_lr:g})", help=HELP["lr"])
    b1, b2 = st.columns(2)
    b1.number_input("beta1", 0.0, 0.9999, DEFAULTS.betas[0], 0.01, format="%g", key="beta1", disabled=optimizer not in ("adam", "adamw"), help=HELP["beta1"])
    b2.number_input("beta2", 0.0, 0.9999, DEFAULTS.betas[1], 0.001, format="%g", key="beta2", disabled=optimizer not in ("adam", "adamw"), help=HELP["beta2"])
    st.number_input("eps", 0.0, 1.0, value=None, format="%g", placeholder="auto (about one rating's gradient)", key="eps",
                    disabled=optimizer not in ("adam", "adamw"),
                    help=HELP["eps"])
    st.number_input("Momentum", 0.0, 0.999, DEFAULTS.momentum, 0.05, format="%g", key="momentum", disabled=optimizer != "momentum", help=HELP["momentum"])
    st.number_input("Weight decay", 0.0, 100.0, value=None, format="%g", placeholder="auto", key="wd", disabled=gibbs,
                    help="Gibbs sampling learns its priors from the data instead." if gibbs else HELP["wd"])
    st.selectbox("Weight decay mode", ["auto", "l2", "decoupled"], key="wd_mode", disabled=gibbs,
                 help=HELP["wd_mode"])
with model_col:
    factors_slot.number_input("Number of factors", 1, 1024, value=None, step=1, key="n_factors",
                              placeholder=f"auto ({default_n_factors(model, optimizer, n_train())})",
                              help=HELP["n_factors"])
    with y_slot:
        implicit_help = ("Also learns from which items each person rated (and who rated each item), not only from "
                         "the ratings they gave: on MovieLens 100k it predicts better (0.886 against 0.903) and takes "
                         "about three times as long (12 s against 4 s here). On by default, for the Bayesian fit of "
                         "the dot products only. Detail: Bayesian SVD++ both ways, from the training ratings only.")
        if gibbs:
            st.checkbox("Learn from what each person chose to rate", True, key="implicit", help=implicit_help)
        else:  # shown off, not the (kept) choice for the Bayesian fit
            st.checkbox("Learn from what each person chose to rate", False, disabled=True, key="implicit_off",
                        help=implicit_help)
        if gibbs:  # shown off, not the (kept) choice for the optimizers
            st.checkbox("Squash predictions into y_range (sigmoid)", False, disabled=True, key="use_y_range_gibbs",
                        help="Gibbs sampling fits the linear dot product; predictions are clipped to the rating scale.")
        else:
            st.checkbox("Squash predictions into y_range (sigmoid)", True, key="use_y_range", help=HELP["use_y_range"])
        y1, y2 = st.columns(2)
        auto_lo, auto_hi = default_y_range(lo, hi)
        y1.number_input("y_range low", value=None, format="%g", key="y_lo", disabled=gibbs,
                        placeholder="none" if gibbs else f"auto ({auto_lo:g})", help=HELP["y_lo"])
        y2.number_input("y_range high", value=None, format="%g", key="y_hi", disabled=gibbs,
                        placeholder="none" if gibbs else f"auto ({auto_hi:g})", help=HELP["y_hi"])
with sched_col:
    st.subheader("Schedule and data")
    st.selectbox("Schedule", SCHEDULES, key="schedule", disabled=gibbs, help=HELP["schedule"])
    st.number_input("Epochs" if not gibbs else "Sweeps (epochs)", 1, 10000, value=None, step=1, key="epochs",
                    placeholder=f"auto ({default_epochs(optimizer, n_train())}"
                                + (f", the first {DEFAULTS.burn_in} not averaged)" if gibbs else ")"),
                    help=HELP["epochs"])
    st.number_input("Batch size", 1, 1 << 22, value=None, step=256, placeholder="auto", key="batch_size", disabled=gibbs, help=HELP["batch_size"])
    timed = "timestamp" in ds.ratings.df
    if ds.valid is not None:
        st.caption(f"Validation: your file {lit(ds.valid_name)} ({ds.valid.n_ratings:,} ratings); training uses every "
                   "rating of the ratings file.")
    if not timed and st.session_state.get("split_how") == "time":
        st.session_state["split_how"] = "random"  # another dataset had times; this one has none
    how = st.selectbox("Validation split", [k for k in SPLIT_LABELS if timed or k != "time"], format_func=SPLIT_LABELS.get,
                       key="split_how", disabled=ds.valid is not None,
                       help=HELP["split_how"] + ("" if timed else " Each user's latest ratings needs a time column, "
                                                 "and this data has none: add a timestamp column to split by time."))
    valid_frac = st.slider("Validation share", 0.05, 0.5, 0.2, 0.05, key="valid_frac", disabled=ds.valid is not None, help=HELP["valid_frac"])
    st.number_input("Seed", 0, 2**31 - 1, 42, key="seed", help=HELP["seed"])
    st.text_input("Run name", "", placeholder=MODEL_LABELS[model], key="run_name", help=HELP["run_name"])

try:
    config = read_config()
    config.validate()
    if ds.valid is not None:
        train_df, valid_df = ds.ratings.df[TRAIN_COLUMNS], ds.valid.df[TRAIN_COLUMNS]
    else:
        train_df, valid_df = split_for_training(ds.ratings.df, how, valid_frac, st.session_state["seed"])
except ValueError as exc:
    st.error(f"These settings cannot train: {lit(exc)}", icon=":material/error:")
    st.stop()

stats = data_stats(train_df)
resolved = resolve(config, stats)
try:  # what the settings cost where they will train; the worker checks again on its own machine
    for line in check_cost(resolved, stats, *job_view.training_place(resolved)):
        st.warning(line, icon=":material/schedule:")
except TooCostly as exc:
    st.error(f"These settings cannot train: {lit(exc)}.", icon=":material/error:")
    st.stop()
with st.expander("What will train (the settings after choosing from the data)"):
    st.dataframe(settings_table(resolved), hide_index=True, key="what_will_train")
    if st.checkbox("Show every setting as the engine sees them (for experts)", key="all_settings",
                   help="The full configuration, including what does not apply to this fit."):
        st.json(resolved.to_dict())
    st.caption(f"{len(train_df):,} training and {len(valid_df):,} validation ratings; "
               f"{cold_count(train_df, valid_df):,} validation ratings have a user or item unseen in training.")

# ---------------------------------------------------------------- learning-rate finder
with st.expander("Learning-rate finder", expanded="lr_result" in st.session_state):
    st.caption("Trains briefly with a learning rate that grows exponentially and plots the loss: pick a rate where "
               "the loss still falls steeply, before it blows up.")
    if gibbs:
        st.info("Gibbs sampling has no learning rate. Choose SGD, momentum, Adam or AdamW to use the finder.")
    elif st.button("Find a learning rate", key="lr_find", icon=":material/search:"):
        with st.spinner("Sweeping learning rates…"):
            result = Recommender(config).lr_find(train_df)
        st.session_state["lr_result"] = (result.lrs, result.losses, result.suggestion)
    if not gibbs and "lr_result" in st.session_state:
        lrs, losses, suggestion = st.session_state["lr_result"]
        if optimizer in ("sgd", "momentum"):
            # Measured on MovieLens 100k (README): the sweep's 100 steps end before plain SGD leaves its start, so its
            # suggestions (0.015 to 0.05) trained worse than the automatic rate, and the dot product without biases
            # learned nothing at all at them. The curve is still worth seeing; the suggestion is not offered.
            st.plotly_chart(charts.lr_finder(lrs, losses, None), config=charts.CONFIG, key="lr_chart")
            st.info(f"For {OPTIMIZER_LABELS[optimizer]} this short sweep cannot tell where training will settle: "
                    f"its suggestions trained worse than the automatic rate ({auto_lr:g}) in every test, so leave "
                    "the learning rate empty, or switch to Adam, whose suggestion is reliable.", icon=":material/info:")
        else:
            st.plotly_chart(charts.lr_finder(lrs, losses, suggestion), config=charts.CONFIG, key="lr_chart")
            st.button(f"Use the suggested learning rate ({suggestion:.3g})", key="use_suggestion",
                      on_click=use_suggestion, args=(suggestion,))

# ---------------------------------------------------------------- training
busy = job is not None and job.active
if st.button("Start training", key="start", type="primary", icon=":material/play_arrow:", disabled=busy,
             help="Stop the running job first" if busy else None):
    name = st.session_state["run_name"].strip() or MODEL_LABELS[config.model]
    job = state.jobs().submit(train_df, valid_df, config, owner=state.who(), name=name, dataset=ds.name,
                              items=ds.items)
    state.remember_job(job)
    st.rerun()
if job is None:
    job_view.show(job)  # says so when the session's job is gone (the server restarted)
