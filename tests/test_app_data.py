"""App test of the Data page: built-in data, uploads (good, bad, and corrected columns), summary and cross-tab."""
import pytest

from tests.app_helpers import app, open_page

GOOD = b"user_id,movie_id,score\n" + b"".join(f"{u},{i},{(u * i) % 5 + 1}\n".encode()
                                               for u in range(1, 7) for i in range(1, 6))
# 30 ratings by 6 users on 5 items; "points" is not a name the reader knows.
ODD = GOOD.replace(b"user_id,movie_id,score", b"who,what,points")


def upload(at, data: bytes, name: str = "ratings.csv"):
    at.radio(key="source").set_value("upload").run()
    at.get("file_uploader")[0].set_value((name, data, "text/csv"))
    return at.run()


def test_empty_state_says_what_to_do(app_env):
    at = open_page(app(), "views/data.py")
    assert not at.exception
    assert "No dataset yet" in at.info[0].value
    assert at.button(key="load_builtin")


def test_builtin_dataset_summary(app_env):
    at = open_page(app(), "views/data.py")
    at.button(key="load_builtin").click().run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Users"] == "120" and metrics["Items"] == "90" and metrics["Ratings"] == "3,000"
    assert metrics["Sparsity"] == f"{1 - 3000 / (120 * 90):.2%}"
    assert metrics["Rating scale"] == "1 to 5"
    assert len(at.get("plotly_chart")) == 4  # histogram, two long tails, cross-tab
    at.slider(key="crosstab_n").set_value(5).run()
    assert not at.exception
    assert at.session_state["dataset"].name == "MovieLens 100k"


def test_good_upload_is_summarised(app_env):
    at = upload(open_page(app(), "views/data.py"), GOOD)
    assert not at.exception and not at.error
    assert "user = `user_id`" in at.success[0].value and "rating = `score`" in at.success[0].value
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Users"] == "6" and metrics["Items"] == "5" and metrics["Ratings"] == "30"
    assert at.session_state["dataset"].name == "ratings.csv"


def test_columns_named_in_unknown_words_are_read_by_their_values_and_can_be_corrected(app_env):
    at = upload(open_page(app(), "views/data.py"), ODD, "odd.csv")
    assert not at.exception and not at.error
    assert any("'points' as the rating" in w.value and "from their values" in w.value for w in at.warning)
    assert "user = `who`" in at.success[0].value and "rating = `points`" in at.success[0].value
    assert at.selectbox(key="col_rating").options == ["(inferred)", "who", "what", "points"]
    at.selectbox(key="col_user").set_value("what")
    at.selectbox(key="col_item").set_value("who")
    at.selectbox(key="col_rating").set_value("points").run()
    assert not at.exception and not at.error
    assert "user = `what`" in at.success[0].value and not any("from their values" in w.value for w in at.warning)
    at.selectbox(key="col_user").set_value("who")
    at.selectbox(key="col_item").set_value("what")
    at.selectbox(key="col_rating").set_value("points").run()
    assert not at.exception and not at.error
    assert {m.label: m.value for m in at.metric}["Ratings"] == "30"


@pytest.mark.parametrize("data, message", [
    (b"", "the file is empty"),
    (b"name,colour\nHeat,red\nAlien,green\n", "no rating column found"),
    (bytes(range(256)) * 8, "binary file"),
    (b"user,item,rating\n1,2,3\n", "needs at least 2 ratings"),
    (b"user,item,rating\n1,2,3\n2,2,x\n", "row 3"),
])
def test_bad_upload_gives_a_message_not_a_traceback(app_env, data, message):
    at = upload(open_page(app(), "views/data.py"), data, "bad.csv")
    assert not at.exception
    assert any(message in e.value for e in at.error), [e.value for e in at.error]
    assert "No dataset yet" in at.info[0].value  # and the page still works: the built-in data loads
    at.radio(key="source").set_value("builtin").run()
    at.button(key="load_builtin").click().run()
    assert not at.exception and at.session_state["dataset"].name == "MovieLens 100k"


def test_items_file_is_attached(app_env):
    at = upload(open_page(app(), "views/data.py"), GOOD)
    items = b"item_id,title,genres\n1,Alpha (1990),Comedy\n2,Beta (1991),Drama\n"
    at.get("file_uploader")[1].set_value(("items.csv", items, "text/csv"))
    at.run()
    assert not at.exception and not at.error
    assert at.session_state["dataset"].items["title"].tolist() == ["Alpha", "Beta"]


def test_an_upload_is_kept_for_its_owner_and_reopened_in_a_new_session(app_env):
    at = upload(open_page(app(), "views/data.py"), GOOD)
    assert not at.exception and not at.error
    again = open_page(app(), "views/data.py")  # a reload: a new session, the same person (local mode)
    assert not again.exception and "Your uploads (1)" in again.radio(key="source").options
    again.radio(key="source").set_value("mine").run()
    again.button(key="reopen").click().run()
    assert not again.exception and again.session_state["dataset"].name == "ratings.csv"
    assert again.session_state["dataset"].ratings.n_ratings == at.session_state["dataset"].ratings.n_ratings
    again.button(key="forget_upload").click().run()
    assert not again.exception and "mine" not in again.radio(key="source").options


def test_a_kept_upload_takes_an_items_and_a_validation_file_later(app_env):
    """Adding an items file later meant uploading the ratings again; a validation file was not kept at all."""
    upload(open_page(app(), "views/data.py"), GOOD)
    again = open_page(app(), "views/data.py")  # another day: a new session, the same person
    again.radio(key="source").set_value("mine").run()
    items = b"item_id,title,genres\n1,Alpha (1990),Comedy\n2,Beta (1991),Drama\n"
    held_out = b"user_id,movie_id,score\n1,1,4\n2,3,2\n"
    again.get("file_uploader")[0].set_value(("items.csv", items, "text/csv"))
    again.get("file_uploader")[1].set_value(("held-out.csv", held_out, "text/csv"))
    again.run().button(key="attach").click().run()
    assert not again.exception and not again.error
    ds = again.session_state["dataset"]
    assert (ds.items["title"].tolist() == ["Alpha", "Beta"] and ds.valid.n_ratings == 2
            and ds.valid_name == "held-out.csv")
    third = open_page(app(), "views/data.py")  # and both come back with the upload
    third.radio(key="source").set_value("mine").run()
    assert "items.csv" in third.selectbox(key="my_upload").format_func(third.selectbox(key="my_upload").value)
    third.button(key="reopen").click().run()
    assert third.session_state["dataset"].valid.n_ratings == 2 and third.session_state["dataset"].items is not None


def test_a_bad_file_added_later_keeps_nothing(app_env):
    upload(open_page(app(), "views/data.py"), GOOD)
    again = open_page(app(), "views/data.py")
    again.radio(key="source").set_value("mine").run()
    again.get("file_uploader")[1].set_value(("held-out.csv", b"user_id,movie_id,score\n1,1,x\n", "text/csv"))
    again.run().button(key="attach").click().run()
    assert not again.exception and again.error and "held-out.csv" in again.error[0].value
    assert "validation" not in again.selectbox(key="my_upload").format_func(again.selectbox(key="my_upload").value)


BAD_FILES = [
    ("empty.csv", b""),
    ("binary.bin", bytes(range(256)) * 8),
    ("random.bin", bytes(__import__("numpy").random.default_rng(0).integers(0, 256, 4000, dtype="uint8"))),
    ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(200)),
    ("prose.txt", b"The quick brown fox\njumps over\nthe lazy dog today again\n"),
    ("header_only.csv", b"item_id,title\n"),
    ("no_item_column.csv", b"name,colour\nHeat,red\nAlien,green\n"),
    ("ragged.csv", b"item_id,title\n1,A\n2,B,C,D\n"),
    ("fake.xlsx", b"PK\x03\x04" + bytes(100)),
    ("fake.parquet", b"PAR1" + bytes(100)),
    ("bad_utf8.csv", b"item_id,title\n1,\xff\xfe\xfa\n2,B\n"),
]


@pytest.mark.parametrize("name, data", BAD_FILES, ids=[n for n, _ in BAD_FILES])
def test_every_bad_items_file_gives_a_message_not_a_traceback(app_env, name, data):
    at = upload(open_page(app(), "views/data.py"), GOOD)
    at.get("file_uploader")[1].set_value((name, data, "application/octet-stream"))
    at.run()
    assert not at.exception, at.exception[0].message
    if at.error:
        assert name in at.error[0].value, at.error[0].value  # it says which file


def test_a_movielens_1m_items_file_reads(app_env):
    """movies.dat: `id::Title (year)::Genre|Genre`, Latin-1 (it crashed the Data page with a traceback)."""
    at = upload(open_page(app(), "views/data.py"), GOOD)
    movies = "1::Toy Story (1995)::Animation|Children's|Comedy\n2::Café au lait (1993)::Drama\n".encode("latin-1")
    at.get("file_uploader")[1].set_value(("movies.dat", movies, "application/octet-stream"))
    at.run()
    assert not at.exception and not at.error
    items = at.session_state["dataset"].items
    assert items["title"].tolist() == ["Toy Story", "Café au lait"] and items["year"].tolist() == [1995, 1993]
    assert items["genres"][0] == "Animation|Children's|Comedy"


def test_a_failed_upload_does_not_leave_the_previous_summary(app_env):
    """After a failed upload the previous dataset's summary stayed below the error, as if the file had loaded."""
    at = upload(open_page(app(), "views/data.py"), GOOD)
    assert at.session_state["dataset"].name == "ratings.csv"
    at = upload(at, b"user,item,rating\n1,2,3\n2,2,x\n", "second.csv")
    assert not at.exception and at.error and "second.csv" in at.error[0].value
    assert "dataset" not in at.session_state and not at.metric
    assert "No dataset yet" in at.info[0].value
    # and the sidebar (drawn before the page) does not still name the dataset that was dropped
    assert "Dataset: none yet" in [c.value for c in at.sidebar.caption], [c.value for c in at.sidebar.caption]


def test_a_validation_file_of_ones_own_is_used_for_validation(app_env):
    """People with their own test file (MovieLens' u1.test, a later month) could not use it in the app."""
    valid = b"user_id,movie_id,score\n1,1,4\n2,3,2\n3,5,5\n"
    at = open_page(app(), "views/data.py")
    at.radio(key="source").set_value("upload").run()
    at.get("file_uploader")[0].set_value(("ratings.csv", GOOD, "text/csv"))
    at.get("file_uploader")[2].set_value(("u1.test", valid, "text/csv"))
    at.run()
    assert not at.exception and not at.error
    ds = at.session_state["dataset"]
    assert ds.valid.n_ratings == 3 and ds.valid_name == "u1.test"
    assert any("Validation file" in c.value and "3 ratings" in c.value for c in at.caption)
    at = at.switch_page("views/train.py").run()
    assert not at.exception and at.slider(key="valid_frac").disabled
    assert any("30 training and 3 validation ratings" in c.value for c in at.caption)


def test_a_reload_keeps_the_dataset_and_the_current_run(app_env, saved_run):
    """A reload forgot the dataset and the current run, and the Data page's radio jumped back to the built-in data
    while an upload was in use."""
    at = upload(open_page(app(), "views/data.py"), GOOD)
    assert not at.exception and not at.error
    again = open_page(app(), "views/data.py")  # a reload: a new session of the same person
    assert not again.exception and again.session_state["dataset"].name == "ratings.csv"
    assert again.radio(key="source").value == "mine"
    assert again.session_state["dataset"].ratings.n_ratings == at.session_state["dataset"].ratings.n_ratings

    again.radio(key="source").set_value("builtin").run()
    again.button(key="load_builtin").click().run()
    third = open_page(app(), "views/data.py")
    assert third.session_state["dataset"].name == "MovieLens 100k" and third.radio(key="source").value == "builtin"

    explore = app()
    explore.query_params["run"] = saved_run
    open_page(explore, "views/evaluate.py")
    explore.switch_page("views/runs.py").run()
    explore.button(key="open_run").click().run()
    later = open_page(app(), "views/evaluate.py")  # no ?run= in the address: the run comes back from the store
    assert not later.exception and later.session_state["run_id"] == saved_run and later.metric

    import ui.state
    from cf_core.access import LOCAL
    from ui.state import _root, _uploads

    # a read that fails once (here: a reader that raises) starts the session without the dataset but keeps it
    # remembered for the next one (it was forgotten for good)
    kept = upload(open_page(app(), "views/data.py"), GOOD)
    assert not kept.exception
    real = ui.state.read_upload
    ui.state.read_upload = lambda *a, **k: (_ for _ in ()).throw(OSError("disk busy"))
    try:
        failed = open_page(app(), "views/data.py")
    finally:
        ui.state.read_upload = real
    assert not failed.exception and failed.session_state.get("dataset") is None
    back = open_page(app(), "views/data.py")
    assert back.session_state["dataset"].name == "ratings.csv"

    gone = upload(open_page(app(), "views/data.py"), GOOD)  # an upload in use; then its owner deletes it elsewhere
    for kept in _uploads(_root()).list(LOCAL):
        _uploads(_root()).delete(kept.id, LOCAL)
    empty = open_page(app(), "views/data.py")
    assert not empty.exception and empty.session_state.get("dataset") is None and not gone.exception
