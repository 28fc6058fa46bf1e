"""App test of the Recommend page: top-N for a user with their history, similar items, and fold-in for a new user."""
from cf_core import analysis
from tests.app_helpers import app, explore, open_page, tables


def test_empty_state(app_env):
    at = open_page(app(), "views/recommend.py")
    assert not at.exception and "No run to explore yet" in at.info[0].value


def test_recommendations(saved_run, trained, items_meta, split_planted):
    train, _ = split_planted
    at = explore(saved_run, "views/recommend.py")
    at.slider(key="rec_n").set_value(5)
    at.slider(key="rec_min_ratings").set_value(0)
    at.text_input(key="rec_user").set_value("7").run()
    assert not at.exception and not at.error
    recs, history, similar = tables(at)
    expected = analysis.recommend(trained, 7, items_meta, 5, 0)
    assert recs["item"].tolist() == expected["item"].tolist()
    assert not set(recs["item"]) & set(train.loc[train["user"] == 7, "item"])  # nothing they already rated
    assert history["rating"].is_monotonic_decreasing and len(history) == 5
    assert set(history["item"]) <= set(train.loc[train["user"] == 7, "item"])

    item = at.selectbox(key="similar_item").value
    assert similar["item"].tolist() == analysis.similar_items(trained, item, items_meta, 5)["item"].tolist()
    at.selectbox(key="similar_item").set_value(3).run()
    assert tables(at)[2]["item"].tolist() == analysis.similar_items(trained, 3, items_meta, 5)["item"].tolist()

    assert "Pick a few items" in at.info[0].value
    at.multiselect(key="new_items").set_value([1, 2, 3]).run()
    at.slider(key="new_rating_1").set_value(1.0).run()
    assert not at.exception
    fold_in = tables(at)[3]
    lo, hi = trained.rating_scale
    step = 0.5 if hi - lo <= 10 else 1.0
    middle = float(lo + round((hi - lo) / 2 / step) * step)  # a slider starts in the middle: choosing is no opinion
    assert at.slider(key="new_rating_2").value == middle
    expected = analysis.recommend_new_user(trained, {1: 1.0, 2: middle, 3: middle}, items_meta, 5, 0)
    assert fold_in["item"].tolist() == expected["item"].tolist()
    assert not {1, 2, 3} & set(fold_in["item"])


def test_unknown_user_is_a_message(saved_run):
    at = explore(saved_run, "views/recommend.py")
    at.text_input(key="rec_user").set_value("no-such-user").run()
    assert not at.exception
    assert "no-such-user" in at.error[0].value


def test_an_item_without_a_year_does_not_break_the_pickers(app_env, trained, items_meta):
    """MovieLens 100k has a film of unknown year (item 267): its pd.NA year crashed the Similar items picker."""
    import pandas as pd

    from cf_core.store import RunStore

    items = items_meta.copy()
    items["year"] = items["year"].astype("Int64")
    items.loc[items.index[:3], "year"] = pd.NA
    run_id = RunStore().save(trained, owner="local", name="no years", items=items)
    at = explore(run_id, "views/recommend.py")
    assert not at.exception
    assert any("(id " in label for label in at.selectbox(key="similar_item").options)  # no year: the id instead
