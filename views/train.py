"""Train: choose the model, optimizer and schedule, find a learning rate, and train in the background with live curves."""
import streamlit as st

from cf_core.config import (
    DEFAULT_LR,
    GIBBS_FACTORS,
    GIBBS_MAX_RATINGS,
    GIBBS_SWEEPS,
    MODEL_NAMES,
    OPTIMIZERS,
    PRETRAINED_LR_FACTOR,
    SCHEDULES,
    TrainConfig,
    data_stats,
    default_optimizer,
    default_y_range,
    resolve,
)
from cf_core.recommender import Recommender
from cf_core.splits import TRAIN_COLUMNS, cold_count, split_for_training
from ui import charts, job_view, state, widgets
from ui.safe import lit

MODEL_LABELS = {"dotbias": "Dot product with biases", "dot": "Dot product (no biases)", "nn": "Neural net"}
OPTIMIZER_LABELS = {"sgd": "SGD", "momentum": "SGD with momentum", "adam": "Adam", "adamw": "AdamW",
                    "gibbs": "Bayesian (Gibbs sampling)"}
SPLIT_LABELS = {"random": "Random", "user": "Per user", "time": "Each user's latest ratings"}

st.title("Train")
job = job_view.current()
ds = widgets.require_dataset()
if ds is None:
    job_view.show(job)  # a job started before a reload still shows, with no dataset picked
    st.stop()


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
        batch_size=st.session_state["batch_size"], seed=st.session_state["seed"], **kw)


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
            "epochs", "batch_size", "split_how", "valid_frac", "seed", "run_name")


def reset_settings() -> None:
    """Every setting back to its default (the previous run's betas no longer carry into the next one)."""
    for key in SETTINGS:
        st.session_state.pop(key, None)
    st.session_state.pop("lr_result", None)


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
    model = st.selectbox("Model", MODEL_NAMES, format_func=MODEL_LABELS.get, key="model")
    factors_slot = st.empty()  # filled once the optimizer is known (Bayesian fits use fewer factors)
    if model == "nn":
        st.text_input("Hidden layers (comma separated sizes)", ",".join(map(str, DEFAULTS.layers)), key="layers")
        st.slider("Dropout after each hidden layer", 0.0, 0.9, DEFAULTS.dropout[0], 0.05, key="dropout")
        st.slider("Dropout on the embeddings", 0.0, 0.9, DEFAULTS.emb_dropout, 0.05, key="emb_dropout")
        pretrain = st.checkbox("Start the embeddings from a Bayesian fit", n_train() < GIBBS_MAX_RATINGS,
                               key="pretrain",
                               help="First fit the dot product with biases by Gibbs sampling (a second or two on "
                                    "MovieLens 100k), then start each user's and item's embedding from its factors and "
                                    "bias, and train the net from there at a tenth of the usual learning rate. The net "
                                    "then begins from what the data already says instead of from noise.")
        st.number_input("Weight decay on the hidden layers", 0.0, 10.0, value=None, format="%g", key="layer_wd",
                        placeholder=f"auto ({'3e-3' if pretrain else '3e-4'} on MovieLens' spread)",
                        help="L2 on the hidden layers' weights, in the loss (l2 mode). With AdamW's decoupled mode the "
                             "weight decay above shrinks the layers too.")
    y_slot = st.container()
with opt_col:
    st.subheader("Optimizer")
    choice = st.selectbox(
        "Optimizer", ("auto", *(o for o in OPTIMIZERS if model != "nn" or o != "gibbs")), key="optimizer",
        format_func=lambda o: f"Auto: {OPTIMIZER_LABELS[fit_method(model, None)]}" if o == "auto" else OPTIMIZER_LABELS[o],
        help="Bayesian (Gibbs sampling) averages many draws of the weights from their posterior instead of optimizing one "
             "setting; it learns its priors and noise level from the data, so it has no learning rate or weight decay, "
             "and it fits the linear dot product (no sigmoid). Auto picks it for the dot products under 2M ratings, "
             "where it predicts best, and Adam otherwise.")
    optimizer = fit_method(model, None if choice == "auto" else choice)
    gibbs = optimizer == "gibbs"
    auto_lr = DEFAULT_LR.get(optimizer, 0) * (PRETRAINED_LR_FACTOR if model == "nn" and st.session_state.get("pretrain") else 1)
    st.number_input("Learning rate", 0.0, 100.0, value=None, format="%g", key="lr", disabled=gibbs,
                    placeholder="none for Gibbs sampling" if gibbs else f"auto ({auto_lr:g})")
    b1, b2 = st.columns(2)
    b1.number_input("beta1", 0.0, 0.9999, DEFAULTS.betas[0], 0.01, format="%g", key="beta1", disabled=optimizer not in ("adam", "adamw"))
    b2.number_input("beta2", 0.0, 0.9999, DEFAULTS.betas[1], 0.001, format="%g", key="beta2", disabled=optimizer not in ("adam", "adamw"))
    st.number_input("eps", 0.0, 1.0, value=None, format="%g", placeholder="auto (about one rating's gradient)", key="eps",
                    disabled=optimizer not in ("adam", "adamw"),
                    help="Adam's denominator guard. Auto scales it to one rating's gradient, so rarely rated users and "
                         "items move in proportion to their evidence.")
    st.number_input("Momentum", 0.0, 0.999, DEFAULTS.momentum, 0.05, format="%g", key="momentum", disabled=optimizer != "momentum")
    st.number_input("Weight decay", 0.0, 100.0, value=None, format="%g", placeholder="auto", key="wd", disabled=gibbs,
                    help="Gibbs sampling learns its priors from the data instead." if gibbs else None)
    st.selectbox("Weight decay mode", ["auto", "l2", "decoupled"], key="wd_mode", disabled=gibbs,
                 help="l2: a penalty in the loss; decoupled: shrink the weights directly (AdamW). auto: decoupled for AdamW.")
with model_col:
    factors_slot.number_input("Number of factors", 1, 1024, value=None, step=1, key="n_factors",
                              placeholder=f"auto ({GIBBS_FACTORS})" if gibbs else "auto (64; 50 for the net)")
    with y_slot:
        if gibbs:  # shown off, not the (kept) choice for the optimizers
            st.checkbox("Squash predictions into y_range (sigmoid)", False, disabled=True, key="use_y_range_gibbs",
                        help="Gibbs sampling fits the linear dot product; predictions are clipped to the rating scale.")
        else:
            st.checkbox("Squash predictions into y_range (sigmoid)", True, key="use_y_range")
        y1, y2 = st.columns(2)
        auto_lo, auto_hi = default_y_range(lo, hi)
        y1.number_input("y_range low", value=None, format="%g", key="y_lo", disabled=gibbs,
                        placeholder="none" if gibbs else f"auto ({auto_lo:g})")
        y2.number_input("y_range high", value=None, format="%g", key="y_hi", disabled=gibbs,
                        placeholder="none" if gibbs else f"auto ({auto_hi:g})")
with sched_col:
    st.subheader("Schedule and data")
    st.selectbox("Schedule", SCHEDULES, key="schedule", disabled=gibbs)
    st.number_input("Epochs" if not gibbs else "Sweeps (epochs)", 1, 10000, value=None, step=1, key="epochs",
                    placeholder=f"auto ({GIBBS_SWEEPS}, the first 20 not averaged)" if gibbs else "auto")
    st.number_input("Batch size", 1, 1 << 22, value=None, step=256, placeholder="auto", key="batch_size", disabled=gibbs)
    timed = "timestamp" in ds.ratings.df
    if ds.valid is not None:
        st.caption(f"Validation: your file {lit(ds.valid_name)} ({ds.valid.n_ratings:,} ratings); training uses every "
                   "rating of the ratings file.")
    if not timed and st.session_state.get("split_how") == "time":
        st.session_state["split_how"] = "random"  # another dataset had times; this one has none
    how = st.selectbox("Validation split", [k for k in SPLIT_LABELS if timed or k != "time"], format_func=SPLIT_LABELS.get,
                       key="split_how", disabled=ds.valid is not None,
                       help=None if timed else "Each user's latest ratings needs a time column, and "
                       "this data has none: add a timestamp column to the file to split by time.")
    valid_frac = st.slider("Validation share", 0.05, 0.5, 0.2, 0.05, key="valid_frac", disabled=ds.valid is not None)
    st.number_input("Seed", 0, 2**31 - 1, 42, key="seed")
    st.text_input("Run name", "", placeholder=MODEL_LABELS[model], key="run_name")

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
with st.expander("What will train (the settings after choosing from the data)"):
    st.json({k: v for k, v in resolve(config, stats).to_dict().items()
             if config.model == "nn" or k not in ("layers", "dropout", "emb_dropout", "layer_wd", "pretrain", "user_factors", "item_factors")})
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
        st.plotly_chart(charts.lr_finder(lrs, losses, suggestion), key="lr_chart")
        st.button(f"Use the suggested learning rate ({suggestion:.3g})", key="use_suggestion", on_click=use_suggestion,
                  args=(suggestion,))

# ---------------------------------------------------------------- training
busy = job is not None and job.active
if st.button("Start training", key="start", type="primary", icon=":material/play_arrow:", disabled=busy,
             help="Stop the running job first" if busy else None):
    name = st.session_state["run_name"].strip() or MODEL_LABELS[config.model]
    job = state.jobs().submit(train_df, valid_df, config, owner=state.who(), name=name, dataset=ds.name,
                              items=ds.items)
    state.remember_job(job)
    st.rerun()
job_view.show(job)
