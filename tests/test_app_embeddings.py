"""App test of the Embeddings page: the PCA map, its controls, and the items at both ends of each component."""
from cf_core import analysis
from tests.app_helpers import app, explore, figure, open_page, tables, values


def test_empty_state(app_env):
    at = open_page(app(), "views/embeddings.py")
    assert not at.exception and "No run to explore yet" in at.info[0].value


def test_pca_map_and_extremes(saved_run, trained, items_meta):
    at = explore(saved_run, "views/embeddings.py")
    assert not at.exception
    at.slider(key="emb_min_ratings").set_value(10).run()
    frame, _ = analysis.item_pca(trained, items_meta, 5, 10)
    fig = figure(at, "pca_map")
    points = sum(len(values(t["x"])) for t in fig["data"])
    assert points == len(frame) > 10
    assert {t["name"] for t in fig["data"]} == {"Comedy", "Drama", "Action"}  # coloured by first genre
    assert any("Movie" in str(t.get("hovertext")) for t in fig["data"])  # hover shows titles

    low, high = analysis.component_extremes(frame, 1, 10)
    shown = tables(at)  # PC1 lowest, PC1 highest, PC2 lowest, ...
    assert shown[0]["title"].tolist() == low["title"].tolist()
    assert shown[1]["title"].tolist() == high["title"].tolist()
    assert len(shown) == 2 * 5

    at.selectbox(key="pc_x").set_value("pc2")
    at.selectbox(key="pc_y").set_value("pc3")
    at.selectbox(key="emb_color").set_value("year").run()
    fig = figure(at, "pca_map")
    assert fig["layout"]["xaxis"]["title"]["text"] == "PC2" and len(fig["data"]) == 1
    assert values(fig["data"][0]["marker"]["color"])[:3].tolist() == frame["year"].astype(float).head(3).tolist()


def test_high_minimum_shrinks_the_map_or_says_why(saved_run, trained):
    at = explore(saved_run, "views/embeddings.py")
    top = at.slider(key="emb_min_ratings").max
    at.slider(key="emb_min_ratings").set_value(top).run()
    assert not at.exception
    kept = int((trained.item_counts >= top).sum())
    if kept < 2:
        assert "lower the minimum" in at.warning[0].value
    else:
        assert sum(len(values(t["x"])) for t in figure(at, "pca_map")["data"]) == kept
