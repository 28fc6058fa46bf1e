"""Tests for ui/charts.py: each builder returns a figure holding the data it was given (no Streamlit needed)."""
import numpy as np
import pandas as pd

from cf_core import analysis
from ui import charts


def test_loss_curve_and_epoch_metrics():
    batches = [(0.1 * i, 1.0 / (i + 1), 1e-3) for i in range(50)]
    fig = charts.loss_curve(batches)
    assert np.allclose(fig.data[0].x, [b[0] for b in batches]) and np.allclose(fig.data[0].y, [b[1] for b in batches])
    epochs = [{"epoch": 1, "train_rmse": 1.0, "valid_rmse": 1.1}, {"epoch": 2, "train_rmse": 0.9, "valid_rmse": 0.95}]
    fig = charts.epoch_metrics(epochs)
    assert [t.name for t in fig.data] == ["train RMSE", "valid RMSE"] and list(fig.data[1].y) == [1.1, 0.95]
    no_valid = charts.epoch_metrics([{"epoch": 1, "train_rmse": 1.0, "valid_rmse": None}])
    assert [t.name for t in no_valid.data] == ["train RMSE"]


def test_lr_finder_marks_the_suggestion():
    lrs = list(np.geomspace(1e-5, 1, 50))
    fig = charts.lr_finder(lrs, list(np.linspace(2, 1, 50)), 1e-3)
    assert fig.layout.xaxis.type == "log" and fig.data[1].x == (1e-3,)
    assert 1 < fig.data[1].y[0] < 2


def test_joint_density_puts_counts_where_they_belong():
    actual = np.array([1.0, 1.0, 5.0, 3.0])
    pred = np.array([1.0, 1.0, 1.0, 3.0])
    d = analysis.density(pred, actual, bins=4, lo=1, hi=5)
    fig = charts.joint_density(d)
    heat = fig.data[0]
    counts = np.asarray(heat.customdata)  # rows: predicted (y), columns: actual (x)
    assert counts.sum() == 4 and counts[0, 0] == 2 and counts[0, 3] == 1  # actual 5 predicted 1: bottom right
    assert list(fig.data[2].y) == list(d["actual_hist"]) and list(fig.data[3].x) == list(d["pred_hist"])


def test_data_charts():
    hist = charts.rating_histogram({1.0: 5, 2.0: 7})
    assert list(hist.data[0].y) == [5, 7]
    tail = charts.long_tail(pd.Series([3, 10, 1]), "user")
    assert list(tail.data[0].y) == [10, 3, 1] and tail.layout.yaxis.type == "log"
    table = pd.DataFrame([[5.0, np.nan], [1.0, 2.0]], index=[7, 8], columns=[1, 2])
    heat = charts.crosstab_heatmap(table).data[0]
    assert list(heat.y) == ["7", "8"] and heat.text[0][1] == "" and heat.text[1][1] == "2"


def test_pca_scatter_colours_and_render_mode():
    frame = pd.DataFrame({"title": list("abcd"), "pc1": [0, 1, 2, 3.0], "pc2": [1, 0, 1, 0.0],
                          "genre": ["x", "y", "x", "y"], "n_ratings": [1, 2, 3, 4]})
    fig = charts.pca_scatter(frame, "pc1", "pc2", "genre")
    assert sorted(t.name for t in fig.data) == ["x", "y"] and fig.data[0].type == "scatter"
    big = pd.concat([frame] * 1000, ignore_index=True)
    assert charts.pca_scatter(big, "pc1", "pc2", None).data[0].type == "scattergl"


def test_error_bars_and_runs():
    frame = pd.DataFrame({"rating": [1.0, 2.0], "n": [3, 4], "rmse": [0.5, 0.7]})
    fig = charts.error_bars(frame, "rating", "t")
    assert list(fig.data[0].x) == ["1", "2"] and list(fig.data[0].customdata) == [3, 4]
    runs = pd.DataFrame({"label": ["a", "b"], "id": ["A", "B"], "valid_rmse": [0.9, 0.8], "valid_mae": [0.7, 0.6]})
    fig = charts.runs_metrics(runs, "B")
    assert list(fig.data[0].marker.opacity) == [0.45, 1.0]
    overlay = charts.runs_overlay({"a": [{"epoch": 1, "valid_rmse": 1.0}], "b": []})
    assert [t.name for t in overlay.data] == ["a"]


def _every_figure():
    """One of each chart with a title or a legend, as the pages draw them."""
    epochs = [{"epoch": 1, "train_rmse": 1.0, "valid_rmse": 1.1}, {"epoch": 2, "train_rmse": 0.9, "valid_rmse": 0.95}]
    runs = pd.DataFrame({"label": ["a", "b"], "id": ["1", "2"], "valid_rmse": [0.9, 0.95], "valid_mae": [0.7, 0.75]})
    return [charts.rating_histogram({1.0: 5, 2.0: 7}), charts.long_tail(pd.Series([500, 40, 3, 1]), "user"),
            charts.epoch_metrics(epochs), charts.runs_overlay({"a": epochs, "b": epochs}),
            charts.runs_metrics(runs, "1"),
            charts.lr_finder(list(np.geomspace(1e-5, 1, 20)), list(np.linspace(2, 1, 20)), 1e-3),
            charts.crosstab_heatmap(pd.DataFrame([[4.0, np.nan]], index=[1], columns=[10, 20]))]


def test_titles_and_legends_stay_clear_of_plotlys_toolbar():
    """Legends and titles were drawn under the toolbar (top right) on several charts."""
    for fig in _every_figure():
        title = fig.layout.title
        if title.text:
            assert title.x == 0 and title.xanchor == "left" and title.yref == "container", title
        if fig.layout.showlegend:
            assert fig.layout.legend.x == 0 and fig.layout.legend.xanchor == "left"
            assert fig.layout.margin.t >= 50 if title.text else fig.layout.margin.t >= 26  # room above the plot


def test_log_axes_are_labelled_at_powers_of_ten():
    """Log axes read "2, 3 ... 100, 2"."""
    tail = charts.long_tail(pd.Series([500, 40, 3, 1]), "item").layout.yaxis
    assert list(tail.tickvals) == [1, 2, 5, 10, 20, 50, 100, 200, 500] and tail.ticktext[-1] == "500"
    assert charts.lr_finder(list(np.geomspace(1e-5, 1, 20)), list(np.linspace(2, 1, 20))).layout.xaxis.dtick == 1


def test_nineteen_genres_get_nineteen_colours():
    """Plotly's ten default colours repeat: Action was drawn like Musical."""
    genres = [f"genre {k}" for k in range(19)]
    frame = pd.DataFrame({"pc1": np.arange(19.0), "pc2": np.arange(19.0), "title": genres, "genre": genres})
    fig = charts.pca_scatter(frame, color="genre")
    assert len({t.marker.color for t in fig.data}) == 19


def test_a_fine_rating_scale_is_binned_and_titles_name_the_crosstabs_items():
    """A -10..10 scale in hundredths had one bar per distinct value (about 640)."""
    rng = np.random.default_rng(0)
    rating = np.round(rng.uniform(-10, 10, 5000), 2)
    table = analysis.error_by_rating(pd.DataFrame({"rating": rating, "prediction": rating + rng.normal(0, 1, 5000)}))
    assert len(table) == 10 and table["n"].sum() == 5000 and table["rating"].iloc[0] == "-10 to -8"
    stars = analysis.error_by_rating(pd.DataFrame({"rating": [1.0, 2.0, 5.0], "prediction": [1.5, 2.0, 4.0]}))
    assert stars["rating"].tolist() == [1.0, 2.0, 5.0]  # a few levels keep a bar each
    cross = pd.DataFrame([[4.0, 3.0]], index=[7], columns=[10, 20])
    fig = charts.crosstab_heatmap(cross, {10: "Toy Story", 20: "A very long title that goes on and on"})
    assert list(fig.data[0].x) == ["Toy Story", "A very long title…"]
    assert "item 20" in fig.data[0].customdata[0][1]
