"""Tests for cf_core.data: every input format, column inference, wide matrices, items and each bad input."""

import io
import math

import numpy as np
import pandas as pd
import pyarrow.csv
import pytest

import cf_core.data.encoding
from cf_core.data import (
    DUPLICATE_RULE,
    DataError,
    crosstab,
    preview,
    ratings_per_item,
    ratings_per_user,
    read_items,
    read_ratings,
    summarize,
)

# Three users, three items; the expected long table every format below must produce.
ROWS = [(1, 10, 4.0, 100), (1, 20, 3.5, 200), (2, 10, 5.0, 300), (2, 30, 1.0, 400), (3, 20, 2.0, 500)]
EXPECTED = pd.DataFrame(ROWS, columns=["user", "item", "rating", "timestamp"]).astype(
    {"user": "int64", "item": "int64", "rating": "float32", "timestamp": "int64"})


def text(sep: str, header: str | None = "user_id{s}item_id{s}rating{s}timestamp", newline: str = "\n") -> str:
    lines = [header.format(s=sep)] if header else []
    lines += [sep.join(f"{v:g}" if isinstance(v, float) else str(v) for v in row) for row in ROWS]
    return newline.join(lines) + newline


def write(tmp_path, name: str, content: str | bytes, encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(content.encode(encoding) if isinstance(content, str) else content)
    return path


def check(r) -> None:
    pd.testing.assert_frame_equal(r.df, EXPECTED)
    assert (r.n_users, r.n_items, r.n_ratings) == (3, 3, 5)


# ------------------------------------------------------------------------------------------------- formats


@pytest.mark.parametrize("sep", [",", "\t", ";", "|", "::"])
def test_delimited_with_header(tmp_path, sep):
    r = read_ratings(write(tmp_path, "ratings.txt", text(sep)))
    check(r)
    assert r.columns == {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "timestamp"}
    assert r.source == "ratings.txt" and r.n_rows_read == 5 and r.warnings == []


@pytest.mark.parametrize("sep", [",", "\t", "::"])
def test_delimited_without_header_reads_by_position(tmp_path, sep):
    r = read_ratings(write(tmp_path, "u.data", text(sep, header=None)))
    check(r)
    assert r.columns == {"user": "column 1", "item": "column 2", "rating": "column 3", "timestamp": "column 4"}


def test_movielens_1m_style(tmp_path):
    path = write(tmp_path, "ratings.dat", "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978300000\n")
    r = read_ratings(path)
    assert r.df["item"].tolist() == [1193, 661, 1193]
    assert r.df["timestamp"].tolist() == [978300760, 978302109, 978300000]


@pytest.mark.parametrize("newline", ["\r\n", "\r"])
def test_line_endings(tmp_path, newline):
    check(read_ratings(write(tmp_path, "r.csv", text(",", newline=newline))))


def test_utf8_bom(tmp_path):
    r = read_ratings(write(tmp_path, "r.csv", b"\xef\xbb\xbf" + text(",").encode()))
    check(r)
    assert r.columns["user"] == "user_id"


def test_latin1_falls_back_with_warning(tmp_path):
    content = "user,item,rating\n1,café,4\n2,café,3\n2,thé,5\n"
    r = read_ratings(write(tmp_path, "r.csv", content, encoding="latin-1"))
    assert r.df["item"].tolist() == ["café", "café", "thé"]
    assert any("Latin-1" in w for w in r.warnings)


def test_utf8_non_ascii_needs_no_warning(tmp_path):
    r = read_ratings(write(tmp_path, "r.csv", "user,item,rating\nzoë,a,4\nzoë,b,3\nann,a,5\n"))
    assert r.df["user"].tolist() == ["zoë", "zoë", "ann"] and r.warnings == []


def test_parquet_detected_by_content(tmp_path):
    path = tmp_path / "ratings.bin"  # the extension lies; the magic bytes decide
    EXPECTED.rename(columns={"user": "userId", "item": "movieId"}).to_parquet(path)
    r = read_ratings(path)
    check(r)
    assert r.columns["user"] == "userId"


def test_xlsx(tmp_path):
    path = tmp_path / "ratings.xlsx"
    EXPECTED.rename(columns={"user": "User", "item": "Item", "rating": "Rating"}).to_excel(path, index=False)
    check(read_ratings(path))


def test_xlsx_error_names_the_excel_row(tmp_path):
    path = tmp_path / "ratings.xlsx"
    pd.DataFrame({"user": [1, 2, 3], "item": [1, 2, 2], "rating": [5, "bad", 3]}).to_excel(path, index=False)
    with pytest.raises(DataError) as err:
        read_ratings(path)
    assert (err.value.row, err.value.column) == (3, "rating")


def test_uploaded_file_like():
    class Upload(io.BytesIO):
        name = "my ratings.csv"

    upload = Upload(text(",").encode())
    upload.read()  # Streamlit's UploadedFile may already have been read; getvalue() still has everything
    r = read_ratings(upload)
    check(r)
    assert r.source == "my ratings.csv"
    assert read_ratings(io.BytesIO(text(",").encode())).source == "<upload>"
    assert read_ratings(io.BytesIO(text(",").encode()), name="x.csv").source == "x.csv"


def test_dataframe_source():
    check(read_ratings(EXPECTED.copy()))


# ---------------------------------------------------------------------------------------------- inference


@pytest.mark.parametrize("header,roles", [
    ("userId,movieId,rating,timestamp", ("userId", "movieId", "rating", "timestamp")),
    ("User-ID,ISBN,Book-Rating,time", ("User-ID", "ISBN", "Book-Rating", "time")),
    ("customer_id,product_id,stars,date", ("customer_id", "product_id", "stars", "date")),
    ("reviewerID,asin,overall,unixReviewTime", ("reviewerID", "asin", "overall", "unixReviewTime")),
    ("user_id:token,item_id:token,rating:float,timestamp:float",
     ("user_id:token", "item_id:token", "rating:float", "timestamp:float")),
    ("timestamp,SCORE,Movie_ID,UID", ("UID", "Movie_ID", "SCORE", "timestamp")),
])
def test_column_inference(tmp_path, header, roles):
    names = header.split(",")
    frame = EXPECTED.rename(columns=dict(zip(("user", "item", "rating", "timestamp"), roles)))[names]
    path = tmp_path / "r.csv"
    frame.to_csv(path, index=False)
    r = read_ratings(path)
    check(r)
    assert r.columns == dict(zip(("user", "item", "rating", "timestamp"), roles))


def test_extra_columns_are_ignored(tmp_path):
    frame = EXPECTED.assign(comment=["ok, fine", "meh", "", "bad", "x"])
    path = tmp_path / "r.csv"
    frame.to_csv(path, index=False)
    check(read_ratings(path))


def test_explicit_columns_override_inference(tmp_path):
    path = write(tmp_path, "r.csv", "a,b,c,rating\n10,1,4,0\n20,1,3.5,0\n10,2,5,0\n30,2,1,0\n20,3,2,0\n")
    r = read_ratings(path, user="b", item="a", rating="c")
    assert r.columns == {"user": "b", "item": "a", "rating": "c"}
    assert r.df["rating"].tolist() == [4.0, 3.5, 5.0, 1.0, 2.0]
    assert list(r.df.columns) == ["user", "item", "rating"]


def test_explicit_column_that_does_not_exist(tmp_path):
    with pytest.raises(DataError) as err:
        read_ratings(write(tmp_path, "r.csv", text(",")), rating="stars")
    message = str(err.value)
    assert message.startswith("r.csv: ") and "'stars'" in message
    assert "'user_id', 'item_id', 'rating', 'timestamp'" in message


def test_explicit_separator_and_header(tmp_path):
    path = write(tmp_path, "r.txt", text(";", header=None))
    r = read_ratings(path, sep=";", header=False)
    check(r)


def test_string_ids_and_leading_zeros_stay_text(tmp_path):
    content = "User-ID;ISBN;Book-Rating\nalice;034545104X;5\nbob;0060973129;0\nbob;034545104X;7\n"
    r = read_ratings(write(tmp_path, "BX.csv", content))
    assert r.df["user"].tolist() == ["alice", "bob", "bob"]
    assert r.df["item"].tolist() == ["034545104X", "0060973129", "034545104X"]
    assert r.df["user"].dtype == "str" and r.df["item"].dtype == "str"
    only_digits = read_ratings(write(tmp_path, "z.csv", "user,item,rating\n1,007,5\n2,008,4\n"))
    assert only_digits.df["item"].tolist() == ["007", "008"]


def test_datetime_timestamps_become_seconds(tmp_path):
    content = "user,item,rating,date\n1,1,5,2020-01-01 00:00:00\n2,2,4,2020-01-02T00:00:10\n"
    r = read_ratings(write(tmp_path, "r.csv", content))
    assert r.df["timestamp"].tolist() == [1577836800, 1577923210]
    assert r.df["timestamp"].dtype == "int64"


def test_negative_ratings_allowed(tmp_path):
    r = read_ratings(write(tmp_path, "jester.csv", "user,item,rating\n1,1,-9.5\n1,2,10\n2,1,0\n"))
    assert r.rating_scale == (-9.5, 10.0)


def test_all_equal_ratings_warn(tmp_path):
    r = read_ratings(write(tmp_path, "r.csv", "user,item,rating\n1,1,1\n1,2,1\n2,1,1\n"))
    assert any("Every rating is 1" in w for w in r.warnings)


def test_missing_marker_in_long_table_is_dropped_with_warning(tmp_path):
    r = read_ratings(write(tmp_path, "r.csv", "user,item,rating\n1,1,0\n1,2,5\n2,1,3\n2,2,0\n"), missing=0)
    assert r.n_ratings == 2 and any("Dropped 2 ratings" in w for w in r.warnings)


# ---------------------------------------------------------------------------------------------- wide matrix


def test_wide_matrix_with_blanks(tmp_path):
    content = "userId,27,49,57\n14,3,,4\n29,,5,\n72,1,2,3\n"
    r = read_ratings(write(tmp_path, "lesson.csv", content))
    assert r.df.to_dict("list") == {"user": [14, 14, 29, 72, 72, 72], "item": [27, 57, 49, 27, 49, 57],
                                     "rating": [3.0, 4.0, 5.0, 1.0, 2.0, 3.0]}
    assert r.n_rows_read == 9
    assert any("wide" in w for w in r.warnings)


def test_wide_matrix_with_zero_sentinel_and_blank_corner(tmp_path):
    content = ",27,49,57\n14,3,0,4\n29,0,5,0\n72,1,2,0\n"
    r = read_ratings(write(tmp_path, "lesson.csv", content), missing=0)
    assert r.df.to_dict("list") == {"user": [14, 14, 29, 72, 72], "item": [27, 57, 49, 27, 49],
                                     "rating": [3.0, 4.0, 5.0, 1.0, 2.0]}


def test_wide_forced_with_named_items_from_excel(tmp_path):
    path = tmp_path / "wide.xlsx"
    pd.DataFrame({"who": ["ann", "bob"], "Heat": [5, None], "Up": [-1, 3]}).to_excel(path, index=False)
    r = read_ratings(path, wide=True, missing=-1)
    assert r.df.to_dict("list") == {"user": ["ann", "bob"], "item": ["Heat", "Up"], "rating": [5.0, 3.0]}


def test_wide_non_number_cell(tmp_path):
    with pytest.raises(DataError) as err:
        read_ratings(write(tmp_path, "w.csv", "user,1,2,3\n1,4,x,5\n2,3,,1\n"))
    assert (err.value.row, err.value.column, err.value.reason) == (2, "2", "not a number: 'x'")


# ------------------------------------------------------------------------------------------------ duplicates


def test_duplicates_keep_latest_by_timestamp(tmp_path):
    content = "user,item,rating,timestamp\n1,1,5,300\n1,1,2,100\n2,2,4,1\n1,1,3,200\n2,1,1,5\n2,2,5,1\n"
    r = read_ratings(write(tmp_path, "r.csv", content))
    # (1, 1): 300 is latest although it comes first; (2, 2): equal times, so the later row wins.
    assert r.df[["user", "item", "rating"]].values.tolist() == [[1, 1, 5], [2, 1, 1], [2, 2, 5]]
    assert r.n_duplicates == 3 and r.n_rows_read == 6
    assert any("2 (user, item) pairs" in w and DUPLICATE_RULE in w for w in r.warnings)


def test_duplicates_keep_last_without_timestamp(tmp_path):
    r = read_ratings(write(tmp_path, "r.csv", "user,item,rating\n1,1,5\n2,1,4\n1,1,2\n1,2,3\n"))
    assert r.df.values.tolist() == [[2, 1, 4], [1, 1, 2], [1, 2, 3]]
    assert r.n_duplicates == 1


# ------------------------------------------------------------------------------------------------ bad input


def raises(tmp_path, content, name="ratings.csv", **kwargs) -> DataError:
    with pytest.raises(DataError) as err:
        read_ratings(write(tmp_path, name, content), **kwargs)
    assert err.value.source == name and str(err.value).startswith(name)
    return err.value


def test_message_format(tmp_path):
    rows = "".join(f"{u},{u + 1},4\n" for u in range(15))
    err = raises(tmp_path, "user,item,rating\n" + rows + "3,4,abc\n")
    assert str(err) == "ratings.csv, row 17, column 'rating': not a number: 'abc'"
    assert (err.row, err.column, err.reason) == (17, "rating", "not a number: 'abc'")


def test_empty_file(tmp_path):
    assert "empty" in raises(tmp_path, b"").reason


def test_header_only(tmp_path):
    assert "no data rows" in raises(tmp_path, "user,item,rating\n").reason


@pytest.mark.parametrize("content", [
    bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)),
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10" + bytes(200),
    b"The quick brown fox\njumps over\nthe lazy dog today again\n",
])
def test_not_a_table(tmp_path, content):
    assert "does not look like a ratings table" in raises(tmp_path, content).reason


def test_no_rating_column_lists_columns_and_names(tmp_path):
    err = raises(tmp_path, "user,comment\n1,good\n2,bad\n")  # no item either: not implicit feedback
    assert "no rating column" in err.reason and "'comment'" in err.reason and "score" in err.reason


def test_a_user_and_item_with_no_rating_is_implicit_feedback_and_repeated_pairs_add_up():
    r = read_ratings(b"user,item,comment\n1,2,good\n2,1,bad\n1,2,again\n3,1,ok\n", name="views.csv")
    assert r.feedback == "counts" and r.df.to_dict("records") == [  # a pair seen twice: one interaction, count 2
        {"user": 1, "item": 2, "rating": 2.0}, {"user": 2, "item": 1, "rating": 1.0},
        {"user": 3, "item": 1, "rating": 1.0}]
    assert "No rating column: read as implicit feedback, each row one interaction" in r.warnings[0]
    plain = read_ratings(b"1,10\n1,11\n2,10\n", name="pairs.txt")  # two columns, no header
    assert plain.feedback == "implicit" and plain.df["rating"].tolist() == [1.0, 1.0, 1.0]


def test_a_column_of_plays_is_read_as_counts_zero_dropped_negative_refused():
    r = read_ratings(b"user,song,plays\n1,a,3\n1,b,0\n2,a,5\n2,a,1\n3,c,2\n", name="plays.csv")
    assert r.feedback == "counts" and r.columns["rating"] == "plays"
    assert r.df.to_dict("records") == [{"user": 1, "item": "a", "rating": 3.0}, {"user": 2, "item": "a", "rating": 6.0},
                                       {"user": 3, "item": "c", "rating": 2.0}]
    assert any("Dropped 1 row whose count is 0" in w for w in r.warnings)
    with pytest.raises(DataError) as err:
        read_ratings(b"user,item,plays\n1,a,3\n2,a,-5\n", name="plays.csv")
    assert (err.value.row, err.value.column, err.value.reason) == (3, "plays", "a count cannot be negative: -5")


def test_no_user_column(tmp_path):
    assert "no user column" in raises(tmp_path, "movieId,rating\n1,2\n2,1\n").reason


def test_non_numeric_rating_counts_bad_rows(tmp_path):
    err = raises(tmp_path, "user,item,rating\n1,1,5\n1,2,five\n2,1,4\n2,2,?\n")
    assert (err.row, err.column) == (3, "rating")
    assert err.reason == "not a number: 'five' (2 rows are not numbers)"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_rating(tmp_path, value):
    err = raises(tmp_path, f"user,item,rating\n1,1,5\n1,2,4\n2,1,{value}\n")
    assert (err.row, err.column) == (4, "rating") and "not a finite number" in err.reason


def test_blank_rating(tmp_path):
    err = raises(tmp_path, "user,item,rating\n1,1,5\n1,2,\n2,1,4\n")
    assert (err.row, err.column) == (3, "rating") and "missing rating" in err.reason


@pytest.mark.parametrize("content,row,column", [
    ("user,item,rating\n1,1,5\n,2,4\n2,1,4\n", 3, "user"),
    ("user,item,rating\n1,1,5\n1,2,4\n2,  ,4\n", 4, "item"),
])
def test_missing_ids(tmp_path, content, row, column):
    err = raises(tmp_path, content)
    assert (err.row, err.column) == (row, column) and f"missing {column} id" in err.reason


def test_row_numbers_count_blank_lines_and_crlf(tmp_path):
    err = raises(tmp_path, "user,item,rating\r\n1,1,5\r\n\r\n1,2,4\r\n2,1,x\r\n")
    assert err.row == 5


def test_ragged_row_names_the_line(tmp_path):
    err = raises(tmp_path, "user,item,rating\n1,1,5\n1,2,4\n2,1\n2,2,3\n3,1,2\n")
    assert err.row == 4 and "expected 3 fields, found 2" in err.reason


def test_ragged_row_too_many_fields(tmp_path):
    err = raises(tmp_path, "1\t1\t5\n1\t2\t4\n2\t1\t3\n2\t2\t3\t9\t9\n3\t1\t2\n")
    assert err.row == 4 and "found 5" in err.reason


@pytest.mark.parametrize("content,what", [
    ("user,item,rating\n1,1,5\n1,2,4\n", "2 different users"),
    ("user,item,rating\n1,1,5\n2,1,4\n", "2 different items"),
    ("user,item,rating\n1,1,5\n", "at least 2 ratings"),
])
def test_too_little_data(tmp_path, content, what):
    assert what in raises(tmp_path, content).reason


def test_missing_file():
    with pytest.raises(DataError, match="not found"):
        read_ratings("/nonexistent/ratings.csv")


# ---------------------------------------------------------------------------------------------- large files
# Delimited text is read a block of rows at a time; a tiny block size puts block boundaries inside these files.


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(cf_core.data.encoding, "_BLOCK_BYTES", 64)


def many_rows(n: int = 300, sep: str = ",") -> str:
    rows = [sep.join(("user", "item", "rating", "timestamp"))]
    rows += [sep.join((str(u % 37 + 1), str(u % 11 + 100), f"{u % 10 / 2 + 0.5:g}", str(1000 + u))) for u in range(n)]
    return "\n".join(rows) + "\n"


def test_clean_file_is_never_read_whole(tmp_path, monkeypatch, small_blocks):
    def whole_file_read(*args, **kwargs):
        raise AssertionError("a clean file must be converted block by block")

    monkeypatch.setattr(pyarrow.csv, "read_csv", whole_file_read)
    r = read_ratings(write(tmp_path, "r.csv", many_rows()))
    expected = pd.read_csv(io.StringIO(many_rows()))
    assert r.n_ratings == 300 and r.n_rows_read == 300 and r.warnings == []
    assert r.df["user"].tolist() == expected["user"].tolist() and r.df["item"].tolist() == expected["item"].tolist()
    assert r.df["rating"].tolist() == expected["rating"].tolist() and r.df["timestamp"].dtype == "int64"
    assert r.df["user"].dtype == "int64" and r.df["rating"].dtype == "float32"


@pytest.mark.parametrize("sep", [",", "::"])
def test_blocks_give_the_same_table(tmp_path, monkeypatch, sep):
    path = write(tmp_path, "r.dat", many_rows(sep=sep))
    whole = read_ratings(path)
    monkeypatch.setattr(cf_core.data.encoding, "_BLOCK_BYTES", 64)
    pd.testing.assert_frame_equal(read_ratings(path).df, whole.df)
    assert whole.n_ratings == 300


def test_error_in_a_later_block_names_its_line(tmp_path, small_blocks):
    lines = many_rows().splitlines()
    lines[250] = "3,4,abc,5000"
    err = raises(tmp_path, "\n".join(lines[:100] + [""] + lines[100:]) + "\n")  # a blank line counts too
    assert (err.row, err.column, err.reason) == (252, "rating", "not a number: 'abc'")


def test_ragged_row_in_a_later_block(tmp_path, small_blocks):
    lines = many_rows().splitlines()
    lines[200] = "3,4"
    err = raises(tmp_path, "\n".join(lines) + "\n")
    assert err.row == 201 and "expected 4 fields, found 2" in err.reason


def test_leading_zero_in_a_later_block_keeps_every_id_text(tmp_path, small_blocks):
    lines = many_rows().splitlines()
    lines[280] = "7,0105,4,5000"
    r = read_ratings(write(tmp_path, "r.csv", "\n".join(lines) + "\n"))
    assert r.df["item"].dtype == "str" and r.df["user"].dtype == "int64"
    assert r.df["item"].iloc[0] == "100" and "0105" in set(r.df["item"])
    assert r.df["item"].tolist() == [line.split(",")[1] for line in lines[1:]]


def test_text_ids_in_a_later_block(tmp_path, small_blocks):
    lines = many_rows().splitlines()
    lines[150] = " bob ,105,4,5000"
    r = read_ratings(write(tmp_path, "r.csv", "\n".join(lines) + "\n"))
    assert r.df["user"].dtype == "str" and r.df["user"].iloc[149] == "bob" and r.df["user"].iloc[0] == "1"


def test_latin1_after_the_first_block_and_utf8_across_blocks(tmp_path, small_blocks):
    rows = "".join(f"{u},{u % 7},4\n" for u in range(100))
    latin = read_ratings(write(tmp_path, "l.csv", "user,item,rating\n" + rows + "zoë,x,3\n", encoding="latin-1"))
    assert latin.df["user"].iloc[-1] == "zoë" and any("Latin-1" in w for w in latin.warnings)
    # "ë" is two bytes in UTF-8; a block boundary may fall between them, which is still valid UTF-8.
    utf8 = read_ratings(write(tmp_path, "u.csv", "user,item,rating\n" + "zoë,x,3\n" * 40 + rows))
    assert utf8.df["user"].iloc[0] == "zoë" and utf8.n_duplicates == 39


def test_missing_marker_and_duplicates_across_blocks(tmp_path, small_blocks):
    lines = many_rows().splitlines()
    lines[10], lines[290] = "1,1,0,5", "1,1,3,6"  # the same pair; the later timestamp wins
    r = read_ratings(write(tmp_path, "r.csv", "\n".join(lines) + "\n"), missing=0.5)
    assert r.n_rows_read == 300 and r.n_duplicates == 1
    assert r.warnings[0] == "Dropped 30 ratings equal to the missing-value marker 0.5."
    assert r.df.loc[(r.df["user"] == 1) & (r.df["item"] == 1), "rating"].tolist() == [3.0]


# --------------------------------------------------------------------------------------------------- items


def test_items_csv(tmp_path):
    content = 'item_id,title,year,genres\n1,Toy Story,1995,Animation|Comedy\n12,"Usual Suspects, The",1995,Crime\n' \
              "267,,,\n"
    items = read_items(write(tmp_path, "items.csv", content))
    assert items["item"].tolist() == [1, 12, 267]
    assert items["title"].tolist() == ["Toy Story", "Usual Suspects, The", "267"]
    assert items["year"].tolist()[:2] == [1995, 1995] and items["year"].isna().tolist() == [False, False, True]
    assert str(items["year"].dtype) == "Int64"
    assert items["genres"].tolist() == ["Animation|Comedy", "Crime", ""]


def test_u_item_latin1(tmp_path):
    flags = ["0"] * 19
    toy = flags.copy()
    toy[3] = toy[4] = toy[5] = "1"  # Animation, Children's, Comedy
    noir = flags.copy()
    noir[10] = "1"
    lines = ["1|Toy Story (1995)|01-Jan-1995||http://x|" + "|".join(toy),
             "2|Café Noir (1992)|01-Jan-1992||http://y|" + "|".join(noir),
             "267|unknown||||" + "|".join(["1"] + flags[1:])]
    items = read_items(write(tmp_path, "u.item", "\n".join(lines) + "\n", encoding="latin-1"))
    assert items["item"].tolist() == [1, 2, 267]
    assert items["title"].tolist() == ["Toy Story", "Café Noir", "unknown"]
    assert items["year"].tolist()[:2] == [1995, 1992] and pd.isna(items["year"].iloc[2])
    assert items["genres"].tolist() == ["Animation|Children's|Comedy", "Film-Noir", "unknown"]


def test_movies_csv(tmp_path):
    content = ('movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n'
               '11,"American President, The (1995)",Comedy|Drama|Romance\n'
               "149,Babylon 5,(no genres listed)\n")
    items = read_items(write(tmp_path, "movies.csv", content))
    assert items["title"].tolist() == ["Toy Story", "American President, The", "Babylon 5"]
    assert items["year"].tolist()[:2] == [1995, 1995] and pd.isna(items["year"].iloc[2])
    assert items["genres"].tolist() == ["Adventure|Animation", "Comedy|Drama|Romance", ""]


def test_items_errors(tmp_path):
    with pytest.raises(DataError, match="empty"):
        read_items(write(tmp_path, "items.csv", b""))
    with pytest.raises(DataError) as err:
        read_items(write(tmp_path, "items.csv", "item_id,title\n1,A\n,B\n"))
    assert (err.value.row, err.value.column) == (3, "item_id")


# ------------------------------------------------------------------------------------------------ describe


@pytest.fixture
def tiny(tmp_path):
    return read_ratings(write(tmp_path, "r.csv", text(",")))


def test_summarize(tiny):
    s = summarize(tiny)
    assert (s["n_users"], s["n_items"], s["n_ratings"]) == (3, 3, 5)
    assert s["sparsity"] == pytest.approx(1 - 5 / 9)
    assert s["rating_scale"] == (1.0, 5.0)
    assert s["mean_rating"] == pytest.approx(15.5 / 5)
    assert s["rating_histogram"] == {1.0: 1, 2.0: 1, 3.5: 1, 4.0: 1, 5.0: 1}
    assert s["ratings_per_user"]["min"] == 1 and s["ratings_per_user"]["max"] == 2
    assert s["ratings_per_user"]["median"] == 2.0 and s["ratings_per_item"]["mean"] == pytest.approx(5 / 3)


def test_counts_for_long_tail(tiny):
    assert ratings_per_user(tiny).to_dict() == {1: 2, 2: 2, 3: 1}
    assert ratings_per_item(tiny).to_dict() == {10: 2, 20: 2, 30: 1}


def test_crosstab(tiny):
    table = crosstab(tiny, n_users=2, n_items=2)
    assert table.index.tolist() == [1, 2] and table.columns.tolist() == [10, 20]
    assert table.loc[1, 10] == 4.0 and table.loc[1, 20] == 3.5 and table.loc[2, 10] == 5.0
    assert math.isnan(table.loc[2, 20])
    assert crosstab(tiny).shape == (3, 3)


def test_preview_shows_columns_even_when_roles_are_missing():
    """preview() names the columns of a file read_ratings rejects, so a user can pick the rating column."""
    data = b"who,what,points\n1,10,4\n2,20,3\n3,30,5\n"
    with pytest.raises(DataError, match="no rating column"):  # no column of numbers to be the rating
        read_ratings(b"who,what,points\n1,10,x\n2,20,y\n", name="odd.csv")
    assert read_ratings(data, name="odd.csv").columns == {"user": "who", "item": "what", "rating": "points"}
    frame = preview(data, n=2, name="odd.csv")
    assert list(frame.columns) == ["who", "what", "points"]
    assert frame.values.tolist() == [["1", "10", "4"], ["2", "20", "3"]]
    assert read_ratings(data, user="who", item="what", rating="points").n_ratings == 3


def test_preview_rejects_unreadable_input():
    with pytest.raises(DataError, match="empty"):
        preview(b"", name="e.csv")
    with pytest.raises(DataError, match="binary"):
        preview(bytes(range(256)) * 4, name="b.bin")


def test_a_rating_column_that_looks_like_times_or_ids_is_warned_about():
    """Choosing the timestamp column as the rating was accepted silently (the scale showed as 8.74725e+08)."""
    rng = np.random.default_rng(0)
    n = 5000
    frame = pd.DataFrame({"user": rng.integers(0, 300, n), "item": rng.integers(0, 400, n),
                          "stars": rng.integers(1, 6, n), "ts": rng.integers(874_724_710, 893_286_638, n),
                          "ref": rng.permutation(10 * n)[:n] + 1000})
    frame = frame.drop_duplicates(["user", "item"])
    assert read_ratings(frame, rating="stars").warnings == []
    assert "looks like times" in " ".join(read_ratings(frame, rating="ts").warnings)
    assert "looks like ids" in " ".join(read_ratings(frame, rating="ref").warnings)
    continuous = frame.assign(score=rng.normal(0, 1, len(frame)))  # a real continuous scale is fine
    assert read_ratings(continuous, rating="score").warnings == []


@pytest.mark.parametrize("text, expected", [
    # a header of letters: positions and values (the rating is the rightmost number column when the counts are close)
    ("a,b,c\n1,10,4\n1,11,3\n2,10,5\n2,12,1\n3,11,2\n", {"user": "a", "item": "b", "rating": "c"}),
    # another language, text item ids, a fractional rating, seconds since 1970
    ("usuario,pelicula,puntuacion,cuando\n7,a,4.5,881250949\n8,b,3,891717742\n7,b,1,878887116\n9,c,2,880606923\n",
     {"user": "usuario", "item": "pelicula", "rating": "puntuacion", "timestamp": "cuando"}),
    # the rating first: a few levels among many ids
    ("n,p,q\n" + "".join(f"{s},{u},{i}\n"
                         for s, u, i in zip([1, 5, 3, 4, 2, 5] * 4, range(100, 124), range(500, 548, 2))),
     {"rating": "n", "user": "p", "item": "q"}),
    ("x,y,z,w\nann,m1,5,2024-01-02\nbob,m2,3,2024-02-03\nann,m2,4,2024-03-01\n",
     {"user": "x", "item": "y", "rating": "z", "timestamp": "w"}),
])
def test_columns_named_in_words_the_reader_does_not_know_are_told_apart_by_their_values(text, expected):
    """(It failed with "no item column found" though the shape said which was which.) What was inferred is said."""
    r = read_ratings(io.BytesIO(text.encode()), name="odd.csv")
    assert r.columns == expected or {k: r.columns[k] for k in expected} == expected, r.columns
    assert any("from their values" in w and "--user-col" in w for w in r.warnings), r.warnings


def test_a_date_that_parses_only_by_a_stretch_is_refused_with_its_row():
    """'m1' parsed as a date in the year 1, which overflowed the conversion to seconds: a traceback."""
    with pytest.raises(DataError, match=r"row 2, column 'y'.*'m1' reads as the year 1"):
        read_ratings(io.BytesIO(b"x,y,z,w\nann,m1,5,2024-01-02\nbob,m2,3,2024-02-03\n"), name="t.csv",
                     user="x", item="w", rating="z", timestamp="y")


def test_unknown_names_over_numbers_with_seconds_are_a_long_table_not_a_matrix():
    """a,b,c,d = user, item, stars, seconds: it was read as a 300 x 3 matrix of "ratings" (item ids and seconds)."""
    rng = np.random.default_rng(0)
    rows = "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in zip(rng.integers(1, 60, 300), rng.integers(1, 90, 300),
                                                              rng.integers(1, 6, 300), 881250949 + np.arange(300)))
    r = read_ratings(("a,b,c,d\n" + rows).encode(), name="abcd.csv")
    assert r.columns == {"timestamp": "d", "rating": "c", "user": "a", "item": "b"}
    assert r.df["rating"].between(1, 5).all()


def test_big_whole_number_ids_are_not_taken_for_the_timestamp():
    """9-digit ids: the timestamp took the user column and the rest failed with "no rating column found"."""
    text = "a,b,c\n" + "".join(f"{100000000 + u},{200000000 + i},{(u + i) % 5 + 1}\n"
                               for u in range(6) for i in range(4))
    r = read_ratings(text.encode(), name="big.csv")
    assert r.columns == {"user": "a", "item": "b", "rating": "c"}


def test_a_named_user_column_counts_among_the_two_before_the_rating():
    r = read_ratings(b"user,x,y\n1,10,4\n2,11,3\n3,10,5\n", name="u.csv")
    assert r.columns == {"user": "user", "item": "x", "rating": "y"}
    assert any("an item or a rating" in w for w in r.warnings), r.warnings
