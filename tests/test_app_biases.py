"""App test of the Biases page: lowest and highest item and user biases, with counts, and the minimum-ratings slider."""
import numpy as np

from cf_core import analysis
from tests.app_helpers import app, chart_keys, explore, open_page, tables


def test_empty_state(app_env):
    at = open_page(app(), "views/biases.py")
    assert not at.exception and "No run to explore yet" in at.info[0].value


def test_bias_tables_follow_the_sliders(saved_run, trained, items_meta):
    at = explore(saved_run, "views/biases.py")
    at.slider(key="bias_min_ratings").set_value(20)
    at.slider(key="bias_n").set_value(5).run()
    assert not at.exception and not at.info  # a model with biases: no "no bias terms" note
    items_low, items_high, users_low, users_high = tables(at)
    expected = analysis.item_bias_table(trained, items_meta, 20)
    assert items_low["title"].tolist() == expected["title"].head(5).tolist()
    assert items_high["title"].tolist() == expected["title"].tail(5)[::-1].tolist()
    assert np.allclose(items_low["bias"], expected["bias"].head(5))
    assert (items_low["n_ratings"] >= 20).all() and {"mean_rating", "n_ratings"} <= set(items_low.columns)
    assert items_low["bias"].is_monotonic_increasing and items_high["bias"].is_monotonic_decreasing
    users = analysis.user_bias_table(trained, 20)
    assert users_low["user"].tolist() == users["user"].head(5).tolist()
    assert (users_high["n_ratings"] >= 20).all()
    assert chart_keys(at) == {"item_bias_hist", "user_bias_hist"}


def test_minimum_above_every_count_is_a_message(saved_run):
    at = explore(saved_run, "views/biases.py")
    at.slider(key="bias_min_ratings").set_value(300).run()
    assert not at.exception
    assert [w.value for w in at.warning] == ["No item has 300 ratings: lower the minimum.",
                                              "No user has 300 ratings: lower the minimum."]
