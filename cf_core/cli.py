"""Command line: `python -m cf_core train | recommend | similar | fetch | users | worker | up | store`.

Progress goes to stderr; `train` prints one JSON object as its last stdout line. Bad input gives a one-line
error on stderr and exit status 2. The command line is the server's own: whoever runs it has the runs folder, so it
acts as an admin, and `train --owner NAME` files the run under a team member's name.
"""
from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from .access import LOCAL, LOCAL_NAME, PermissionDenied
from .config import (
    FEEDBACKS,
    IMPLICIT_LOSSES,
    MODEL_NAMES,
    OPTIMIZERS,
    ORDINAL_MAX_LEVELS,
    OUTPUTS,
    SCHEDULES,
    TrainConfig,
    data_stats,
    resolve,
)
from .cost import check_cost
from .data import DataError, read_items, read_ratings
from .ids import UnknownIdError
from .store import RunNotFound, RunStore, StoreDamaged
from .train import Callback, EpochInfo


class StderrProgress(Callback):
    """One line per epoch on stderr (and a dot per tenth of an epoch when it is a tty)."""

    def on_epoch_end(self, trainer, info: EpochInfo) -> None:
        valid = ("" if info.valid_rmse is None
                 else f" valid_rmse {info.valid_rmse:.4f} valid_mae {info.valid_mae:.4f}")
        gibbs = trainer.cfg.optimizer == "gibbs"
        lr = "" if gibbs else f" lr {info.lr:.2e}"
        print(f"{'sweep' if gibbs else 'epoch'} {info.epoch}/{trainer.cfg.epochs} "
              f"train_rmse {info.train_rmse:.4f}{valid}{lr} {info.seconds:.1f}s", file=sys.stderr, flush=True)

    def on_pretrain(self, trainer, sweep: int, sweeps: int) -> None:
        if sweep % 20 == 0 or sweep == sweeps:
            print(f"embeddings from a Bayesian fit: sweep {sweep}/{sweeps}", file=sys.stderr, flush=True)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _warn(warnings: list[str]) -> None:
    for line in warnings:
        print(f"warning: {line}", file=sys.stderr, flush=True)


def _top_k(text: str) -> int:
    """The ranking metrics' K for argparse: a whole number from 1 (else exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _share(text: str) -> float:
    """A share in [0, 1) for argparse (a negative or whole share is an error, exit 2)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, not {text}")
    return value


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(",") if x.strip())


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subcommand per entry of COMMANDS."""
    p = argparse.ArgumentParser(prog="python -m cf_core",
                                description="Collab Studio engine: train and query collaborative-filtering models.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train a model and save it as a run")
    _train_data_arguments(t)
    _train_model_arguments(t)
    _train_run_arguments(t)
    _query_parsers(sub)
    f = sub.add_parser("fetch", help="download MovieLens 100k into the cache (checksum verified)")
    f.add_argument("--force", action="store_true")
    _users_parser(sub)
    _serving_parsers(sub)
    return p


def _train_data_arguments(t: argparse.ArgumentParser) -> None:
    """train: the ratings, the validation set, the item metadata and the columns' roles."""
    t.add_argument("--ratings", required=True, help="ratings file (csv, tsv, ::, parquet, xlsx) or 'ml-100k'")
    t.add_argument("--valid", help="a separate validation ratings file")
    t.add_argument("--valid-frac", type=_share, default=0.2,
                   help="validation fraction when --valid is not given (0 for none)")
    t.add_argument("--split", choices=("random", "user", "time"), default="random")
    t.add_argument("--seed", type=int, default=42)
    t.add_argument("--items", help="item metadata (titles, genres)")
    for role, flag in (("user", "--user-col"), ("item", "--item-col"), ("rating", "--rating-col"),
                       ("timestamp", "--time-col")):
        t.add_argument(flag, metavar="NAME", help=f"the column of the {role} (default: by its name, else its values)")


def _train_model_arguments(t: argparse.ArgumentParser) -> None:
    """train: the model and its fit (every one left out is chosen by `resolve` from the data)."""
    t.add_argument("--implicit", action=argparse.BooleanOptionalAction, default=None,
                   help="the Bayesian fit also learns from what each user rated and who rated each item (Bayesian "
                        "SVD++ both ways; the dot products with Gibbs sampling). Default: on wherever the fit is "
                        "Gibbs sampling")
    t.add_argument("--genres", action=argparse.BooleanOptionalAction, default=None,
                   help="the Bayesian fit also learns from the items' genres (the item table's genres column, "
                        "separated by |). Default: on wherever the fit is Gibbs sampling and the items have genres")
    t.add_argument("--day", action=argparse.BooleanOptionalAction, default=None,
                   help="the Bayesian fit also learns from the day of each rating (needs a timestamp column). "
                        "Default: off (it predicted worse on MovieLens 100k)")
    t.add_argument("--output", choices=OUTPUTS,
                   help="the Bayesian fit's output: ordinal (an ordered probit over the rating levels) or gaussian. "
                        f"Default: ordinal where the ratings take 2 to {ORDINAL_MAX_LEVELS} values")
    t.add_argument("--feedback", choices=FEEDBACKS, default="explicit",
                   help="explicit (ratings, the default) or implicit: who interacted with what, fitted by weighted "
                        "ALS and judged by its top K (every row is one interaction; with --like only the ratings of "
                        "at least that; with --counts the rating column is a count)")
    t.add_argument("--alpha", type=float, help="implicit: an interaction's confidence is 1 + alpha * count "
                   "(default 1)")
    t.add_argument("--counts", action="store_true", help="implicit: the rating column holds counts (plays, clicks)")
    t.add_argument("--implicit-loss", choices=IMPLICIT_LOSSES,
                   help="implicit with --optimizer sgd, momentum, adam or adamw: bce (the dot product with a sigmoid "
                        "against sampled negatives; the default) or bpr (pairwise ranking). Without --optimizer: "
                        "weighted ALS")
    t.add_argument("--negatives", type=int, help="implicit, bce: negatives drawn per interaction (default 4)")
    t.add_argument("--model", choices=MODEL_NAMES, default="dotbias")
    t.add_argument("--factors", type=int, help="embedding size (default: chosen from the data)")
    t.add_argument("--layers", type=_ints, help="nn hidden layers, e.g. 64,32")
    t.add_argument("--dropout", type=_floats, help="nn dropout per layer, e.g. 0.2,0.1")
    t.add_argument("--epochs", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--wd", type=float)
    t.add_argument("--wd-mode", choices=("l2", "decoupled"))
    t.add_argument("--layer-wd", type=float, help="nn: L2 on the hidden layers' weights (l2 mode)")
    t.add_argument("--pretrain", action=argparse.BooleanOptionalAction,
                   help="nn: start the embeddings from a Bayesian dot-product fit (default: under 2M ratings)")
    t.add_argument("--optimizer", choices=OPTIMIZERS,
                   help="default: gibbs (Bayesian PMF) for the dot models under 2M ratings, else adam")
    t.add_argument("--betas", type=_floats)
    t.add_argument("--schedule", choices=SCHEDULES)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--y-range", type=_floats, help="low,high of the sigmoid output")


def _train_run_arguments(t: argparse.ArgumentParser) -> None:
    """train: where it trains, where the run goes and under whose name, and what it prints."""
    t.add_argument("--device", default="auto", help="auto, cpu or cuda")
    t.add_argument("--out", help="runs folder (default ./runs or $COLLAB_STUDIO_RUNS)")
    t.add_argument("--name", default="")
    t.add_argument("--owner", default=LOCAL_NAME, help="whose run it is in team mode (default: local)")
    t.add_argument("--fused", action=argparse.BooleanOptionalAction,
                   help="the fused Adam step of the dot models (default: where it applies; never under torchrun)")
    t.add_argument("--quiet", action="store_true", help="no progress on stderr")
    t.add_argument("--k", type=_top_k, default=10,
                   help="the ranking metrics' K: each validation user's top K (default 10)")
    t.add_argument("--like", type=float, help="a rating of at least this counts as liked: the ranking metrics "
                   "count only such validation ratings, and --feedback implicit trains on such ratings alone "
                   "(default: every rating)")


def _query_parsers(sub) -> None:
    """recommend and similar: questions to a saved run."""
    for name, helptext in (("recommend", "top-N items for a user of a saved run"),
                           ("similar", "items most similar to an item")):
        s = sub.add_parser(name, help=helptext)
        s.add_argument("--run", required=True, help="run id (see the runs folder or the dashboard)")
        s.add_argument("--user" if name == "recommend" else "--item", required=True)
        s.add_argument("-n", type=int, default=10)
        s.add_argument("--min-ratings", type=int, default=0)
        s.add_argument("--out", help="runs folder")
        s.add_argument("--json", action="store_true", help="print JSON lines instead of a table")


def _users_parser(sub) -> None:
    """users add | remove | list: the team mode's user list."""
    u = sub.add_parser("users", help="the team mode's user list ($COLLAB_STUDIO_USERS, else runs/users.sqlite)")
    u.add_argument("--file", help="the user list (default: $COLLAB_STUDIO_USERS, else users.sqlite in the runs folder)")
    usub = u.add_subparsers(dest="action", required=True)
    add = usub.add_parser("add", help="add a user (asks for the password twice, or reads one line with "
                                      "--password-stdin)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may see, delete and stop everyone's runs and jobs")
    add.add_argument("--reset", action="store_true", help="the user exists: set a new password (signs them out)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    rm = usub.add_parser("remove", help="remove a user and sign them out everywhere")
    rm.add_argument("name")
    usub.add_parser("list", help="list the users")


def _serving_parsers(sub) -> None:
    """worker, up and store: running the service and looking after its runs."""
    w = sub.add_parser("worker", help="take queued training jobs and train them, until stopped (SIGTERM, Ctrl-C)")
    w.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (a GPU when there is one)")
    w.add_argument("--out", help="runs folder or fsspec URL (default ./runs or $COLLAB_STUDIO_RUNS)")
    w.add_argument("--max-jobs", type=int, help="exit after this many jobs")
    w.add_argument("--threads", type=int, help="CPU threads for training (default: every core; `up` leaves one to "
                                                "the web server)")

    up = sub.add_parser("up", help="start the workers (one per GPU, else one CPU worker) and the web server; restart "
                                   "whichever dies; stop them all together")
    up.add_argument("--workers", default="auto",
                    help="auto (one per GPU, else one on the CPU), 0, or a number of CPU workers")
    up.add_argument("web", nargs=argparse.REMAINDER, help="the web server's command line, after --")

    st = sub.add_parser("store", help="check the runs index and folders; --repair rebuilds what it can")
    ssub = st.add_subparsers(dest="action", required=True)
    chk = ssub.add_parser("check", help="report damage (exit 1 when there is some); --repair fixes what it can")
    chk.add_argument("--repair", action="store_true")
    chk.add_argument("--out", help="runs folder or fsspec URL")


def _columns(a: argparse.Namespace) -> dict:
    """The columns named on the command line (--user-col and the rest), for read_ratings."""
    return {"user": a.user_col, "item": a.item_col, "rating": a.rating_col, "timestamp": a.time_col}


def _load_ratings(source: str, columns: dict | None = None):
    if source in ("ml-100k", "movielens-100k"):
        from .datasets import movielens_100k
        ratings, items = movielens_100k()
        return ratings, items
    return read_ratings(source, **(columns or {})), None


def _config(a: argparse.Namespace) -> TrainConfig:
    fields = {"model": a.model, "n_factors": a.factors, "layers": a.layers, "dropout": a.dropout, "epochs": a.epochs,
              "lr": a.lr, "wd": a.wd, "wd_mode": a.wd_mode, "layer_wd": a.layer_wd, "pretrain": a.pretrain,
              "optimizer": a.optimizer, "betas": a.betas,
              "schedule": a.schedule, "batch_size": a.batch_size, "y_range": a.y_range, "device": a.device,
              "implicit": a.implicit, "genres": a.genres, "day": a.day, "output": a.output,
              "feedback": a.feedback, "alpha": a.alpha, "counts": a.counts or None,
              "like": a.like if a.feedback == "implicit" else None, "implicit_loss": a.implicit_loss,
              "negatives": a.negatives}
    if a.feedback == "implicit" and a.optimizer in (None, "als"):  # the dot product by weighted ALS
        fields["model"] = "dot"
    cfg = TrainConfig().replace(**{k: v for k, v in fields.items() if v is not None})
    cfg.validate()
    return cfg


def cmd_train(a: argparse.Namespace) -> int:
    """train: read the data, fit, save the run; prints its summary as one JSON line (rank 0 only under torchrun)."""
    from .recommender import check_finite
    from .train import distributed

    cfg = _config(a)
    if a.fused is not None:
        cfg = cfg.replace(fused=a.fused)
    rank = _init_distributed(cfg)
    if rank:
        a.quiet = True  # rank 0 reports and saves
    train, valid, items = _training_data(a)
    _warn_cost(cfg, train)  # TooCostly: exit 2
    rec, seconds = _fit(cfg, train, valid, a.quiet, items)
    metrics = rec.evaluate(valid) if valid is not None else {"rmse": None, "mae": None, "n": 0, "n_cold": 0,
                                                             "baseline_rmse": None}
    check_finite(rec, metrics)  # exit 2 with what to try; a diverged fit is never saved
    world = distributed()[1]
    if world > 1:  # every rank done with the group before any leaves it (a rank that left first has aborted gloo's)
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        if rank:
            return 0
    out = _train_summary(rec, metrics, seconds, train, valid, world)
    if valid is not None and len(valid):
        from .ranking import ranking

        done = metrics.get("ranking")  # an implicit run's evaluation ranked already, at K = 10
        out["ranking"] = done if done is not None and a.k == done["k"] else ranking(rec, valid, a.k, a.like)
    out["run_id"] = _save_run(a, rec, out, items, train, valid)
    print(json.dumps(out))
    return 0


def _training_data(a: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """The training and validation ratings (the --valid file, a split of --valid-frac, or none) and the item
    metadata, with the readers' warnings on stderr."""
    from .splits import split_for_training

    ratings, items = _load_ratings(a.ratings, _columns(a))
    _warn(ratings.warnings)
    if a.items:
        items = read_items(a.items)
    df = ratings.df
    if a.valid:
        valid_ratings = read_ratings(a.valid, **_columns(a))
        _warn(valid_ratings.warnings)
        return df, valid_ratings.df, items
    if a.valid_frac > 0:
        train, valid = split_for_training(df, a.split, a.valid_frac, a.seed, keep_time=bool(a.day))
        return train, valid, items
    return df, None, items


def _warn_cost(cfg: TrainConfig, train: pd.DataFrame) -> None:
    """Warn when the fit will take long; raises TooCostly when it cannot fit in memory or time."""
    from .train import pick_device

    stats = data_stats(train)
    resolved = resolve(cfg, stats)
    _warn(check_cost(resolved, stats, str(pick_device(resolved.device))))


def _fit(cfg: TrainConfig, train: pd.DataFrame, valid: pd.DataFrame | None, quiet: bool,
         items: pd.DataFrame | None = None):
    """The fitted Recommender and the seconds it took (progress on stderr unless `quiet`)."""
    from .recommender import Recommender

    callbacks = [] if quiet else [StderrProgress()]
    t0 = time.perf_counter()
    rec = Recommender(cfg).fit(train, valid, callbacks, items=items)
    return rec, time.perf_counter() - t0


def _train_summary(rec, metrics: dict, seconds: float, train: pd.DataFrame, valid: pd.DataFrame | None,
                   world: int) -> dict:
    """The JSON object `train` prints (before the run id), with a warning when the model is no better than the mean."""
    from .recommender import no_better_than_the_mean
    from .splits import cold_count

    out = {"valid_rmse": metrics["rmse"], "valid_mae": metrics["mae"],
           "valid_baseline_rmse": metrics.get("baseline_rmse"), "train_seconds": round(seconds, 3),
           "fit_seconds": round(rec.history.seconds, 3), "epochs": len(rec.history.epochs),
           "best_epoch": rec.history.best_epoch, "device": str(rec.device), "model": rec.config.model,
           "optimizer": rec.config.optimizer, "pretrain": rec.config.pretrain,
           "n_users": rec.n_users, "n_items": rec.n_items, "n_train": len(train),
           "n_valid": 0 if valid is None else len(valid),
           "n_valid_cold": 0 if valid is None else cold_count(train, valid), "world_size": world}
    if no_better_than_the_mean(out):
        out["no_better_than_the_mean"] = True
        _warn([f"this model predicts no better than giving everyone the mean rating (validation RMSE "
               f"{out['valid_rmse']:.4f}, the mean's {out['valid_baseline_rmse']:.4f}); it is saved, but try more "
               "epochs, other settings, or more data"])
    return out


def _save_run(a: argparse.Namespace, rec, out: dict, items: pd.DataFrame | None, train: pd.DataFrame,
              valid: pd.DataFrame | None) -> str:
    """Save the run under --out and --owner with the summary's figures as its metrics; returns its id."""
    from .ranking import flat_metrics

    store = RunStore(a.out)
    metrics = {k: v for k, v in out.items() if k.startswith(("valid", "train", "fit")) or k in ("epochs", "best_epoch")}
    if rec.config.feedback == "implicit" and out.get("ranking"):  # its top K, as the worker keeps it
        metrics.update({f"valid_{k}": v for k, v in flat_metrics({"ranking": out["ranking"]}).items()})
    return store.save(rec, owner=a.owner, name=a.name or Path(a.ratings).stem, dataset=Path(a.ratings).name,
                      metrics=metrics,
                      items=items, valid=valid, train=train[["user", "item", "rating"]])


def _init_distributed(cfg: TrainConfig) -> int:
    """Under torchrun (WORLD_SIZE > 1): join the process group (NCCL on GPUs, gloo on CPUs); returns this rank."""
    import os

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0
    if cfg.optimizer == "gibbs" or (cfg.optimizer is None and cfg.model != "nn"):
        raise ValueError("torchrun trains with a gradient optimizer: add --optimizer adam (or sgd, momentum, adamw); "
                         "Gibbs sampling runs in one process")
    gpu = cfg.device != "cpu" and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group("nccl" if gpu else "gloo")
    return torch.distributed.get_rank()


def cmd_worker(a: argparse.Namespace) -> int:
    from .worker import run_worker

    return run_worker(RunStore(a.out), a.device, a.max_jobs, a.threads)


def cmd_up(a: argparse.Namespace) -> int:
    from .launch import up

    web = a.web[1:] if a.web[:1] == ["--"] else a.web
    return up(web, a.workers)


def cmd_store(a: argparse.Namespace) -> int:
    store = RunStore(a.out, create_tables=False)  # a damaged index refuses the tables' creation
    report = store.check(repair=a.repair)
    for line in report:
        print(line)
    if not report:
        print(f"all well: {len(store._folders())} run folder(s), index {store.db.describe()}")
    return 1 if report and not a.repair else 0


def _print_frame(frame: pd.DataFrame, as_json: bool) -> None:
    if as_json:
        for row in frame.to_dict("records"):
            print(json.dumps(row, default=str))
    else:
        print(frame.to_string(index=False))


def cmd_query(a: argparse.Namespace) -> int:
    from . import analysis

    run = RunStore(a.out).load(a.run, LOCAL)
    if a.command == "recommend":
        frame = analysis.recommend(run.recommender, a.user, run.items, a.n, a.min_ratings)
    else:
        frame = analysis.similar_items(run.recommender, a.item, run.items, a.n, a.min_ratings)
    _print_frame(frame[[c for c in frame.columns if c not in ("genres", "year")]], a.json)
    return 0


def cmd_fetch(a: argparse.Namespace) -> int:
    from .datasets import fetch_movielens_100k

    path = fetch_movielens_100k(force=a.force)
    print(path)
    return 0


def _password(a: argparse.Namespace) -> str:
    if a.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass(f"Password for {a.name}: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def cmd_users(a: argparse.Namespace) -> int:
    from .users import UserDirectory

    users = UserDirectory(a.file)
    if a.action == "add":
        user = users.add(a.name, _password(a), admin=a.admin, replace=a.reset)
        done = "password set for" if a.reset else "added"
        print(f"{done} {user.name}{' (admin)' if user.admin else ''} in {users.path}")
    elif a.action == "remove":
        users.remove(a.name)
        print(f"removed {a.name} from {users.path}")
    else:
        for user in users.list():
            print(f"{user.name}\t{'admin' if user.admin else 'user'}\t"
                  f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(user.created))}")
    return 0


# What a user can cause (bad data, an unknown id or run, a refused permission, a damaged store): one line, exit 1.
USER_ERRORS = (DataError, UnknownIdError, RunNotFound, PermissionDenied, ValueError, FileNotFoundError, StoreDamaged)
COMMANDS = {"train": cmd_train, "recommend": cmd_query, "similar": cmd_query, "fetch": cmd_fetch, "users": cmd_users,
            "worker": cmd_worker, "up": cmd_up, "store": cmd_store}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except USER_ERRORS as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except (MemoryError, torch.OutOfMemoryError) as exc:
        print(f"error: out of memory ({str(exc).splitlines()[0] if str(exc) else 'no details'}): use fewer factors "
              "or a smaller batch", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a folder that cannot be written...
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
