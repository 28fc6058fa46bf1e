"""Hostile strings through every page: file, column, run and dataset names, titles, genres, user and item ids, a
crafted ?run= and ?share=. Whatever Streamlit renders as Markdown (text, captions, alerts, headers, labels, help,
tabs, expanders, progress text) may hold them only inside a code span, where nothing is interpreted; Plotly's
figures hold them only with their tags escaped. The same run in a real browser is in test_browser_injection.py."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from cf_core.data import read_ratings
from cf_core.datasets import synthetic
from cf_core.recommender import Recommender
from cf_core.splits import random_split
from cf_core.store import RunStore
from tests.app_helpers import app, open_page

HOST = "127.0.0.9"  # nothing listens there; a page that fetched it or linked to it would show it in the DOM
PAYLOADS = [
    f"![x](http://{HOST}/pixel.png)",
    f"[click](http://{HOST}/)",
    f'<a href="http://{HOST}/">live</a><img src="http://{HOST}/i.png">',
    f"http://{HOST}/auto and www.{HOST}.example and someone@{HOST}.example",
    ":red[red] :material/warning: $x^2$ **bold**",
    "``` `` ` break`out ```",
    "=HYPERLINK(\"http://127.0.0.9/\")",
]
# What may never stand outside a code span in Markdown: the host, tags, Markdown links, directives, LaTeX.
FORBIDDEN = (HOST, "<a", "<img", "](", ":red[", ":material/warning:", "$x^2$", "**bold**")
NOT_MARKDOWN = {"Code", "Json", "Text", "Html", "PlotlyChart", "Arrow", "ArrowNamedDataSet", "DataFrame",
                "TextInput", "TextArea"}  # shown verbatim (a text input's value is not its label, which is checked)
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)


def hostile_frames(n_users: int = 40, n_items: int = 30):
    """Ratings whose user and item ids, titles and genres are all payloads."""
    data = synthetic(n_users=n_users, n_items=n_items, n_ratings=900, n_factors=2, noise=0.3, seed=1).ratings
    users = {u: f"{PAYLOADS[u % len(PAYLOADS)]} u{u}" for u in data["user"].unique()}
    items = {i: f"{PAYLOADS[i % len(PAYLOADS)]} i{i}" for i in data["item"].unique()}
    ratings = pd.DataFrame({"user": data["user"].map(users), "item": data["item"].map(items),
                            "rating": np.clip(np.rint(data["rating"]), 1, 5)})
    meta = pd.DataFrame({"item": list(items.values()),
                         # every title starts as a formula would, so any table that shows one must neutralize it
                         "title": [f"{'=+-@'[k % 4]}{PAYLOADS[(k + 3) % len(PAYLOADS)]} title {k}"
                                   for k in range(len(items))],
                         "year": 1990, "genres": [f"{PAYLOADS[k % len(PAYLOADS)]}|Drama" for k in range(len(items))]})
    return ratings, meta


def save_hostile_run(store: RunStore, owner: str = "local") -> str:
    ratings, meta = hostile_frames()
    train, valid = random_split(ratings, 0.2, 0)
    rec = Recommender(epochs=3, n_factors=4).fit(train, valid)
    metrics = {f"valid_{k}": v for k, v in rec.evaluate(valid).items()}
    return store.save(rec, owner=owner, name=" ".join(PAYLOADS[:3]), dataset=PAYLOADS[1] + ".csv", metrics=metrics,
                      items=meta, valid=valid, train=train[["user", "item", "rating"]])


def _walk(node):
    yield node
    for child in getattr(node, "children", {}).values():
        yield from _walk(child)


def _strings(message, out: list[tuple[str, str]]) -> None:
    """Every string field of a proto message that Streamlit renders as Markdown (recursively)."""
    name = message.DESCRIPTOR.name
    if name in NOT_MARKDOWN:
        if name in ("TextInput", "TextArea"):  # their label and help are Markdown
            out.extend((f"{name}.{f}", getattr(message, f)) for f in ("label", "help"))
        return
    for field, value in message.ListFields():
        if field.type not in (field.TYPE_STRING, field.TYPE_MESSAGE):
            continue
        values = [value] if isinstance(value, str) or hasattr(value, "DESCRIPTOR") else list(value)
        if field.type == field.TYPE_STRING:
            if field.name in ("body", "label", "help", "text", "value", "placeholder", "caption") or \
                    (field.name == "options" and name not in ("Selectbox", "MultiSelect", "Radio")):  # shown as text
                out.extend((f"{name}.{field.name}", v) for v in values)
        elif field.type == field.TYPE_MESSAGE:
            for sub in values:
                _strings(sub, out)


def markdown_outside_code(at) -> list[tuple[str, str]]:
    """(element.field, text) of every Markdown string with a forbidden piece outside its code spans."""
    found: list[tuple[str, str]] = []
    for node in _walk(at._tree):
        proto = getattr(node, "proto", None)
        if proto is not None and hasattr(proto, "DESCRIPTOR"):
            _strings(proto, found)
    return [(where, text) for where, text in found
            if any(bad in CODE_SPAN.sub("", text) for bad in FORBIDDEN)]


def _figure_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _figure_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _figure_strings(v)


def raw_tags_in_figures(at) -> list[str]:
    """Strings of Plotly figures with a payload's tag unescaped (Plotly would draw a live link or fetch an image)."""
    import json

    return [text for c in at.get("plotly_chart") for text in _figure_strings(json.loads(c.proto.spec))
            if "<a href" in text or "<img" in text]


def formula_cells(at) -> list[str]:
    """Table cells whose toolbar CSV download a spreadsheet would run as a formula."""
    from cf_core.export import FORMULA_START

    return [v for d in at.dataframe for col in d.value.columns if not pd.api.types.is_numeric_dtype(d.value[col])
            for v in d.value[col] if isinstance(v, str) and v.startswith(FORMULA_START)]


def check(at) -> None:
    assert not at.exception, at.exception[0].message if at.exception else ""
    assert markdown_outside_code(at) == []
    assert raw_tags_in_figures(at) == []
    assert formula_cells(at) == []


@pytest.fixture
def hostile_run(app_env):
    return save_hostile_run(RunStore())


def test_a_code_span_is_closed_only_by_its_own_fence():
    from ui.safe import lit

    for text in PAYLOADS + ["`", "``", "a`", "`a", ""]:
        span = lit(text)
        assert span == "(empty)" if not text else CODE_SPAN.sub("", span) == ""


@pytest.mark.parametrize("page", ["views/evaluate.py", "views/embeddings.py", "views/biases.py",
                                  "views/recommend.py", "views/runs.py"])
def test_every_explore_page_and_runs_shows_hostile_strings_as_text(hostile_run, page):
    at = app()
    at.query_params["run"] = hostile_run
    at = open_page(at, page)
    check(at)
    assert at.get("plotly_chart") or page in ("views/biases.py", "views/recommend.py") or at.dataframe
    if page == "views/recommend.py":
        at.multiselect(key="new_items").set_value(at.multiselect(key="new_items").options[:3]).run()
        check(at)  # the fold-in's sliders are labelled with titles
        assert len(at.slider) >= 5
    if page == "views/embeddings.py":
        at.selectbox(key="emb_color").set_value("genre").run()
        check(at)
        legend = [t.get("name", "") for t in __import__("json").loads(at.get("plotly_chart")[0].proto.spec)["data"]]
        assert any("&lt;a href=" in name for name in legend)  # the genre was escaped, not dropped
    if page == "views/runs.py":
        at.button(key="make_link").click().run()
        check(at)


def test_data_and_train_pages_show_a_hostile_dataset_as_text(app_env):
    from ui import state

    ratings, meta = hostile_frames()
    at = app()
    at.session_state["dataset"] = state.Dataset(PAYLOADS[0] + ".csv", read_ratings(ratings, name=PAYLOADS[2]), meta)
    at = open_page(at, "views/data.py")
    check(at)
    assert at.expander  # the items expander shows titles in a dataframe
    at = at.switch_page("views/train.py").run()
    check(at)
    at.text_input(key="run_name").set_value(PAYLOADS[0]).run()
    at.number_input(key="epochs").set_value(2).run()
    at.button(key="start").click().run()
    import time

    for _ in range(100):
        at.run()
        if any("Done" in s.value for s in at.success):
            break
        time.sleep(0.2)
    check(at)
    assert any("Done" in s.value for s in at.success)


@pytest.mark.parametrize("param", ["run", "share"])
def test_a_crafted_link_is_not_echoed(app_env, param):
    at = app()
    at.query_params[param] = PAYLOADS[0]
    at = open_page(at, "views/evaluate.py")
    check(at)
    assert at.error and all(HOST not in e.value for e in at.error)


def test_an_upload_error_quoting_a_cell_is_text(app_env):
    from tests.test_app_data import upload

    at = upload(open_page(app(), "views/data.py"),
                f"user,item,rating\n1,2,{PAYLOADS[0]}\n3,4,5\n".encode(), name=PAYLOADS[1] + ".csv")
    check(at)
    assert at.error and HOST in at.error[0].value  # the message quotes the cell, inside a code span
