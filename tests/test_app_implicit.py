"""App test of implicit feedback: a file of plays read on the Data page, the Train page's implicit form and a real
fit through the job queue, and the Evaluate page judging the run by its top K; a ratings file trained as implicit."""
import numpy as np
import pandas as pd
import pytest

from tests.app_helpers import app, open_page
from tests.test_app_data import upload
from tests.test_app_train import resolved_config, settings_shown, train_to_done, with_data


def _plays() -> bytes:
    """Three taste groups of listeners, each playing mostly its own 30 songs, some more than once."""
    rng = np.random.default_rng(0)
    rows = [(u, int(s), int(rng.integers(1, 6))) for u in range(150)
            for s in rng.choice(np.arange(30) + 30 * (u % 3), 12, replace=False)]
    return pd.DataFrame(rows, columns=["user", "song", "plays"]).to_csv(index=False).encode()


def test_a_file_of_plays_is_read_as_implicit_feedback_and_trains_as_such(app_env):
    at = upload(open_page(app(), "views/data.py"), _plays(), "plays.csv")
    assert not at.exception and not at.error
    assert any("implicit feedback" in i.value for i in at.info)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Interactions"] == "1,800" and metrics["Counts"] == "1 to 5"

    at.switch_page("views/train.py").run()
    assert not at.exception and at.radio(key="feedback").value == "implicit" and at.radio(key="feedback").disabled
    resolved = resolved_config(at)
    assert (resolved["feedback"], resolved["optimizer"], resolved["counts"]) == ("implicit", "als", True)
    shown = settings_shown(at)
    assert shown["How it learns"] == "Weighted alternating least squares" and shown["Sweeps"] == "8"
    assert "no learning rate" in next(i.value for i in at.info if "learning rate" in i.value)
    at = train_to_done(at)

    at.switch_page("views/evaluate.py").run()
    assert not at.exception and not at.error and not at.metric  # no RMSE: nothing to predict a rating of
    table = next(d.value for d in at.dataframe if "most popular items" in d.value.columns)
    ndcg = table.set_index("metric").iloc[2]
    assert ndcg["this model"] > 1.5 * ndcg["most popular items"], table

    at.switch_page("views/biases.py").run()  # no biases: the items and people by how often they chose
    assert not at.exception and any("no bias terms" in i.value for i in at.info)
    most = at.dataframe[1].value  # the items' tables: least, then most chosen
    assert most["n_ratings"].is_monotonic_decreasing and "bias" not in most
    at.switch_page("views/runs.py").run()  # its top-10 NDCG in the runs table, and why it has no RMSE curve
    assert not at.exception
    runs = next(d.value for d in at.dataframe if "valid_ndcg" in d.value.columns)
    assert runs["valid_ndcg"].iloc[0] == pytest.approx(ndcg["this model"], abs=1e-4)
    assert any("no validation curve" in c.value for c in at.caption)
    for page in ("views/recommend.py", "views/embeddings.py"):  # the explore pages work on its factors
        at.switch_page(page).run()
        assert not at.exception, page


def test_a_ratings_file_can_train_as_implicit_with_a_liking_threshold(app_env):
    at = with_data(open_page(app(), "views/train.py"))
    assert not at.radio(key="feedback").disabled
    at.radio(key="feedback").set_value("implicit").run()
    assert not at.exception
    at.number_input(key="like").set_value(4.0).run()
    resolved = resolved_config(at)
    assert (resolved["feedback"], resolved["like"], resolved["counts"]) == ("implicit", 4.0, False)
    assert settings_shown(at)["Counts as chosen"] == "ratings of at least 4"
    at.selectbox(key="implicit_method").set_value("bce").run()  # the lesson's dot product, by Adam
    resolved = resolved_config(at)
    assert (resolved["optimizer"], resolved["implicit_loss"], resolved["model"]) == ("adam", "bce", "dotbias")
    assert at.number_input(key="implicit_lr").placeholder == "auto (0.01)"
    at.number_input(key="implicit_epochs").set_value(3).run()
    at = train_to_done(at)
    at.switch_page("views/evaluate.py").run()
    assert not at.exception and any("most popular items" in d.value.columns for d in at.dataframe)
    at.switch_page("views/train.py").run()
    at.radio(key="feedback").set_value("explicit").run()  # and back: the rating models' form
    assert not at.exception and resolved_config(at)["feedback"] == "explicit"
