import numpy as np
import pytest

from cf_core.access import LOCAL
from cf_core.store import RunNotFound, RunStore


def test_round_trip_list_load_delete(tmp_path, trained, split_planted, items_meta):
    train, valid = split_planted
    store = RunStore(tmp_path)
    run_id = store.save(trained, owner="local", name="first", dataset="planted", metrics={"valid_rmse": 0.5},
                        items=items_meta, valid=valid, train=train[["user", "item", "rating"]])
    assert len(run_id) >= 20
    runs = store.list(LOCAL)
    assert [r.id for r in runs] == [run_id] and runs[0].metrics["valid_rmse"] == 0.5 and runs[0].model == "dotbias"
    run = store.load(run_id, LOCAL, device="cpu")
    rec = run.recommender
    assert np.allclose(rec.predict(valid["user"], valid["item"]), trained.predict(valid["user"], valid["item"]))
    assert rec.config == trained.config.replace(device="cpu")
    assert len(rec.history.epochs) == len(trained.history.epochs)
    assert run.items["title"].tolist() == items_meta["title"].tolist()
    assert len(run.valid) == len(valid)
    assert store.history(run_id, LOCAL)["epochs"][0]["epoch"] == 1
    # no pickle anywhere in the run folder
    assert sorted(p.name for p in (tmp_path / run_id).iterdir()) == [
        "ids.json", "items.parquet", "meta.json", "train.parquet", "valid.parquet", "weights.safetensors"]
    store.delete(run_id, LOCAL)
    assert store.list(LOCAL) == [] and not (tmp_path / run_id).exists()


def test_ids_are_unique_and_unknown_or_malicious_ids_are_refused(tmp_path, trained):
    store = RunStore(tmp_path)
    ids = {store.save(trained, owner="local") for _ in range(3)}
    assert len(ids) == 3
    for bad in ("nope", "../../etc/passwd", "", "x" * 200):
        with pytest.raises(RunNotFound):
            store.load(bad, LOCAL)
    assert not store.exists("A" * 22)


def test_string_ids_survive_round_trip(tmp_path):
    import pandas as pd

    from cf_core.recommender import Recommender

    df = pd.DataFrame({"user": ["a", "b", "a", "c"], "item": ["x", "x", "y", "y"], "rating": [1.0, 2.0, 3.0, 4.0]})
    rec = Recommender(epochs=1).fit(df)
    store = RunStore(tmp_path)
    loaded = store.load(store.save(rec, owner="local"), LOCAL, device="cpu").recommender
    assert loaded.user_map.ids.tolist() == ["a", "b", "c"]
    assert loaded.predict("a", "y")[0] == pytest.approx(rec.predict("a", "y")[0])


def test_ids_never_start_with_a_dash_or_underscore(monkeypatch):
    """A run id such as '-au_11F...' reads as an option to a shell and as a formula to a spreadsheet."""
    from cf_core import runs, store

    tokens = iter(["-dash" + "x" * 17, "_under" + "x" * 16, "good" + "x" * 18])
    monkeypatch.setattr(runs.secrets, "token_urlsafe", lambda n: next(tokens))
    assert store.new_id is runs.new_id and store.new_id() == "good" + "x" * 18
