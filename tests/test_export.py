"""CSV exports cannot run as spreadsheet formulas (CSV injection)."""
import io

import pandas as pd

from cf_core.export import csv_bytes, neutralize


def test_formula_cells_get_an_apostrophe_numbers_stay_numbers():
    frame = pd.DataFrame({"title": ["=HYPERLINK(\"http://x/\")", "+cmd", "-cmd", "@SUM(A1)", "\tx", "Heat (1995)"],
                          "score": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0], "=col": [1, 2, 3, 4, 5, 6]})
    back = pd.read_csv(io.BytesIO(csv_bytes(frame)), dtype={"title": str})
    assert back["title"].tolist() == ["'=HYPERLINK(\"http://x/\")", "'+cmd", "'-cmd", "'@SUM(A1)", "'\tx",
                                      "Heat (1995)"]
    assert back["score"].tolist() == [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0]
    assert list(back.columns) == ["title", "score", "'=col"]
    assert frame["title"][0].startswith("=")  # the caller's frame is untouched
    assert neutralize(-2) == -2 and neutralize(None) is None and neutralize("-1.5") == "-1.5"
    assert neutralize("-1+1") == "'-1+1"
