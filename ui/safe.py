"""User-supplied strings as text, never as Markdown or HTML: for Streamlit's Markdown elements, Plotly's labels, and
the tables whose toolbar downloads a CSV.

Streamlit renders captions, alerts, headers and widget labels as Markdown, and its Markdown turns bare URLs into
links even when every character is backslash-escaped; inside a code span nothing is interpreted (no link, image,
colour directive, icon or LaTeX), so `lit` puts a user's string in one. Plotly reads `<a href>`, `<b>` and `<br>`
in hover texts, tick labels and legends, so `html` escapes them as entities, which Plotly shows as the characters.
"""
from __future__ import annotations

import html as _html
import re

import pandas as pd

_BACKTICKS = re.compile(r"`+")


def lit(value: object) -> str:
    """`value` as a Markdown code span that shows exactly its characters (newlines become spaces)."""
    text = " ".join(str(value).split("\n")).replace("\r", " ")
    if not text.strip():
        return "(empty)"
    fence = "`" * (max((len(m) for m in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def html(value: object) -> str:
    """`value` with &, < and > as entities, for Plotly text that would otherwise be read as its HTML subset."""
    return _html.escape(str(value), quote=False)


def cells(frame: pd.DataFrame, exempt: tuple[str, ...] = ()) -> pd.DataFrame:
    """A table for st.dataframe whose toolbar CSV download cannot run as formulas (cf_core.export.safe_frame): a text
    cell starting with =, +, - or @ is shown, and downloaded, with a leading apostrophe (`exempt`: the app's ids)."""
    from cf_core.export import safe_frame

    return safe_frame(frame, exempt)


def html_series(values: pd.Series) -> pd.Series:
    """`html` over a column, leaving missing values missing."""
    return values.map(lambda v: v if v is None or (isinstance(v, float) and v != v) else html(v))
