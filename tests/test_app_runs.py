"""App test of the Runs page: the table, compared curves, open, share link, downloads and delete."""
import io

import pandas as pd

from cf_core.access import LOCAL
from cf_core.store import RunStore
from tests.app_helpers import app, chart_keys, figure, open_page, tables, values


def test_empty_state(app_env):
    at = open_page(app(), "views/runs.py")
    assert not at.exception and "No saved runs of yours yet" in at.info[0].value


def test_runs_table_open_share_and_delete(saved_run, trained, split_planted):
    store = RunStore()
    train, valid = split_planted
    second = store.save(trained, owner="local", name="second", dataset="planted",
                        metrics={"valid_rmse": 0.9, "valid_mae": 0.7}, valid=valid,
                        train=train[["user", "item", "rating"]])
    at = open_page(app(), "views/runs.py")
    assert not at.exception
    runs = tables(at)[0]
    assert runs["id"].tolist() == [second, saved_run]  # newest first
    assert runs["n_factors"].tolist() == [8, 8] and runs.loc[1, "valid_rmse"] < 0.9
    assert chart_keys(at) == {"compare_chart"}
    curves = figure(at, "compare_chart")["data"]
    assert len(curves) == 2 and list(values(curves[0]["x"])) == list(range(1, 9))  # 8 epochs each
    valid_rmse = [e["valid_rmse"] for e in trained.history.epochs]
    assert list(values(curves[1]["y"])) == valid_rmse
    at.selectbox(key="run_pick").set_value(saved_run)
    at.button(key="open_run").click().run()
    assert not at.exception
    assert at.session_state["run_id"] == saved_run and at.query_params["run"] == saved_run
    at.button(key="make_link").click().run()
    token = store.shares(saved_run, LOCAL)[0].token
    assert at.code[0].value.endswith(f"/evaluate?share={token}") and token not in saved_run and len(token) >= 43

    labels = [b.label for b in at.get("download_button")]
    assert labels == ["Predictions (CSV)", "Embeddings (CSV)"]

    at.selectbox(key="run_pick").set_value(second).run()
    assert at.button(key="delete_run").disabled
    at.checkbox(key="confirm_delete").check().run()
    at.button(key="delete_run").click().run()
    assert not at.exception
    assert [r.id for r in store.list(LOCAL)] == [saved_run]
    assert tables(at)[0]["id"].tolist() == [saved_run]
    assert at.session_state["run_id"] == saved_run


def test_csv_exports(saved_run, trained, split_planted):
    from ui import state

    _, valid = split_planted
    frame = pd.read_csv(io.BytesIO(state.predictions(saved_run).to_csv(index=False).encode()))
    assert list(frame.columns) == ["user", "item", "rating", "prediction", "cold"] and len(frame) == len(valid)


def test_local_mode_lists_runs_from_before_owners(app_env, trained):
    """Upgrading keeps a local user's runs: an index row with no owner is still theirs in local mode."""
    legacy = RunStore().save(trained, owner="", name="from before owners")
    at = open_page(app(), "views/runs.py")
    assert not at.exception and tables(at)[0]["id"].tolist() == [legacy]


def test_a_damaged_run_is_listed_as_damaged_and_deleted_while_the_others_work(saved_run, trained, app_env):
    """One run whose meta.json was missing took the Runs page down for everyone; a truncated weights file put a
    traceback on that run's pages."""
    store = RunStore()
    broken = store.save(trained, owner="local", name="broken")
    (app_env / "runs" / broken / "meta.json").unlink()
    at = open_page(app(), "views/runs.py")
    assert not at.exception
    table = tables(at)[0].set_index("id")
    assert table.loc[broken, "state"] == "damaged: meta.json is missing" and table.loc[saved_run, "state"] == "ok"
    assert "1 of your runs has damaged files" in at.warning[0].value
    assert chart_keys(at) == {"compare_chart"}  # the whole runs are still compared
    at.selectbox(key="run_pick").set_value(broken).run()
    assert not at.exception and "files are damaged" in at.error[0].value and not at.get("download_button")
    at.checkbox(key="confirm_delete").check().run()
    at.button(key="delete_run").click().run()
    assert not at.exception and [r.id for r in store.list(LOCAL)] == [saved_run]

    weights = app_env / "runs" / saved_run / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:200])
    at = app()
    at.query_params["run"] = saved_run
    at = open_page(at, "views/evaluate.py")
    assert not at.exception and "weights.safetensors is truncated" in at.error[0].value


def test_a_corrupt_index_gives_every_page_a_plain_message(app_env, saved_run):
    from ui import state

    state._store.clear()
    index = app_env / "runs" / "runs.sqlite"
    for suffix in ("-wal", "-shm"):
        (app_env / "runs" / f"runs.sqlite{suffix}").unlink(missing_ok=True)
    index.write_bytes(b"garbage" * 1000)
    for page in ("views/runs.py", "views/train.py", "views/evaluate.py", "views/data.py"):
        at = app()
        at.query_params["run"] = saved_run
        at = open_page(at, page)
        assert not at.exception, page
        assert any("cannot be read" in e.value and "store check --repair" in e.value for e in at.error), page
