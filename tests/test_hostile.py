"""A reliability sweep: hostile files and settings, each through the reader, the CLI and (files) the Data page.

Every case must end in a message that says what is wrong (and where: file, row, column), never a traceback, and
nothing may be saved as if it were fine. The CLI runs in-process (`main`), so an exception that escapes it fails
the test; one subprocess run checks that what a person sees on stderr is one line.
"""
from __future__ import annotations

import errno
import io
import json
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cf_core import cost as cost_module
from cf_core.access import Principal
from cf_core.cli import main
from cf_core.config import DataStats, TrainConfig, resolve
from cf_core.cost import TooCostly, check_cost
from cf_core.data import DataError, read_items, read_ratings
from cf_core.store import RunStore
from tests.app_helpers import app, open_page
from tests.test_app_data import upload

ADMIN = Principal("admin", admin=True)
GOOD = "user,item,rating\n" + "".join(f"{u},{i},{(u * i) % 5 + 1}\n" for u in range(1, 30) for i in range(1, 10))


def _parquet(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out)
    return out.getvalue()


def _xlsx(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_excel(out, index=False)
    return out.getvalue()


def _zip_bomb() -> bytes:
    """A workbook whose one sheet unpacks to about 600 MB (from about 2 MB)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as f:
            row = b"<row><c><v>1</v></c></row>" * 40_000
            for _ in range(600):
                f.write(row)
    return out.getvalue()


def _with_line(n: int, line: str) -> str:
    """GOOD with data row n (1 = the header) replaced."""
    lines = GOOD.splitlines()
    lines[n - 1] = line
    return "\n".join(lines) + "\n"


# (name, content, what the message must say, the row it must name or None)
FILES: list[tuple[str, bytes, str, int | None]] = [
    ("empty.csv", b"", "empty", None),
    ("blank_lines.csv", b"\n\n  \n\n", "empty", None),
    ("only_bom.csv", b"\xef\xbb\xbf", "empty", None),
    ("header_only.csv", b"user,item,rating\n", "no data rows", None),
    ("random.bin", bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype="uint8")), "binary", None),
    ("image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(300), "binary", None),
    ("archive.gz", b"\x1f\x8b\x08\x00" + bytes(300), "binary", None),
    ("prose.txt", b"The quick brown fox\njumps over\nthe lazy dog today again\n", "does not look like", None),
    ("page.html", b"<!DOCTYPE html><html><body><p>ratings</p></body></html>\n", "web page", None),
    ("broken.json", b'[{"user": 1, "item": 2, "rating": 3},', "JSON", None),
    ("letters.csv", _with_line(5, "4,4,x").encode(), "not a number", 5),
    ("percent.csv", _with_line(3, "1,2,40%").encode(), "not a number", 3),
    ("comma_decimal_and_text.csv", b"user;item;rating\n1;2;4,5\n2;3;good\n3;3;2\n", "not a number", 3),
    ("blank_rating.csv", _with_line(4, "1,3,").encode(), "missing rating", 4),
    ("inf.csv", _with_line(6, "1,5,inf").encode(), "not a finite number", 6),
    ("minus_inf.csv", _with_line(6, "1,5,-inf").encode(), "not a finite number", 6),
    ("nan.csv", _with_line(7, "1,6,nan").encode(), "not a finite number", 7),
    ("one_1e30.csv", _with_line(7, "1,6,1e30").encode(), "too large", 7),
    ("all_1e38.csv", ("user,item,rating\n" + "".join(f"{u},{u % 7},{u}e37\n" for u in range(1, 40))).encode(),
     "too large", 2),
    ("very_negative.csv", _with_line(2, "1,1,-1e20").encode(), "too large", 2),
    ("no_user.csv", _with_line(9, ",8,3").encode(), "missing user id", 9),
    ("no_item.csv", _with_line(9, "1,,3").encode(), "missing item id", 9),
    ("extra_fields.csv", _with_line(8, "1,7,3,9,9").encode(), "expected 3 fields", 8),
    ("short_row.csv", _with_line(8, "1,7").encode(), "expected 3 fields", 8),
    ("unclosed_quote.csv", b'user,item,rating\n1,"abc,4\n2,b,3\n3,c,5\n', "fields", 2),
    ("one_rating.csv", b"user,item,rating\n1,2,3\n", "at least 2 ratings", None),
    ("one_user.csv", b"user,item,rating\n1,2,3\n1,3,4\n1,4,5\n", "2 different users", None),
    ("duplicates_only.csv", b"user,item,rating\n1,1,4\n1,1,5\n1,1,3\n", "at least 2 ratings", None),
    ("separators_only.csv", b",,,\n,,,\n,,,\n", "missing user id", 1),
    ("no_rating_column.csv", b"name,colour\nHeat,red\nAlien,green\n", "no rating column", None),
    ("bad_time_row_102.csv",
     ("user,item,rating,timestamp\n" + "".join(f"{k % 30},{k % 17},{k % 5 + 1},{874965758 + k}\n" for k in range(100))
      + "3,3,3,not a time\n" + "4,4,4,874965758\n").encode(), "not a timestamp", 102),
    ("time_1e30.csv", b"user,item,rating,timestamp\n1,1,4,5\n2,2,3,1e30\n3,1,4,6\n", "not a timestamp", 3),
    ("time_year_99999.csv", b"user,item,rating,timestamp\n1,1,4,2020-01-01\n2,2,3,99999-01-01\n3,1,4,2020-01-02\n",
     "not a timestamp", 3),
    ("explicit_time_in_words.csv", b"user,item,rating,date\n1,1,4,yesterday\n2,2,3,today\n3,1,4,now\n",
     "not a timestamp", 2),
    ("fake.xlsx", b"PK\x03\x04" + bytes(200), "Excel", None),
    ("bomb.xlsx", _zip_bomb(), "unpacks to", None),
    ("text_rating.xlsx", _xlsx(pd.DataFrame({"user": [1, 2, 3], "item": [1, 2, 3], "rating": [4, "four", 5]})),
     "not a number", 3),
    ("empty_sheet.xlsx", _xlsx(pd.DataFrame()), "empty", None),
    ("fake.parquet", b"PAR1" + bytes(200), "Parquet", None),
    ("nested_rating.parquet", _parquet(pa.table({"user": [1, 2, 3], "item": [1, 2, 3],
                                                 "rating": pa.array([[4.0], [3.0], [5.0]])})), "must be numbers", None),
    ("struct_user.parquet", _parquet(pa.table({"user": pa.array([{"a": 1}, {"a": 2}, {"a": 3}]), "item": [1, 2, 3],
                                               "rating": [3.0, 4.0, 5.0]})), "numbers or text", None),
    ("binary_rating.parquet", _parquet(pa.table({"user": [1, 2, 3], "item": [1, 2, 3],
                                                 "rating": pa.array([b"\x00", b"a", b"b"])})), "must be numbers", None),
    ("no_rows.parquet", _parquet(pa.table({"user": pa.array([], pa.int64()), "item": pa.array([], pa.int64()),
                                           "rating": pa.array([], pa.float64())})), "no data rows", None),
    ("wide_text_cell.csv", b",a,b,c,d\nu1,4,,1,2\nu2,,3,x,1\nu3,5,1,,4\nu4,1,2,3,4\nu5,2,,3,5\n", "not a number", 3),
    ("wide_1e30.csv", b",a,b,c,d\nu1,4,,1,2\nu2,,1e30,2,1\nu3,5,1,,4\nu4,1,2,3,4\n", "too large", 3),
]


@pytest.fixture(scope="module")
def big_files(tmp_path_factory):
    """The large hostile files, written once: a header of 2 million columns, one 64 MB line, 200,000 columns."""
    d = tmp_path_factory.mktemp("hostile")
    (d / "wide_header.csv").write_text(",".join(f"c{k}" for k in range(2_000_000)) + "\n" + "1," * 10 + "1\n")
    with open(d / "long_line.csv", "w") as f:
        f.write("user,item,rating\n1,2," + "9" * (64 << 20) + "\n1,3,4\n")
    (d / "many_columns.csv").write_text(",".join(f"{k}" for k in range(200_000)) + "\n" + "1,2,3\n" * 3)
    return d


BIG = [("wide_header.csv", "over 16 MB", 1), ("long_line.csv", "64 MB", 2),
       ("many_columns.csv", "200,000 columns", None)]


@pytest.mark.parametrize("name, content, says, row", FILES, ids=[f[0] for f in FILES])
def test_each_hostile_file_gets_a_message_with_where(tmp_path, name, content, says, row):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_ratings(path)
    assert says in str(err.value) and name in str(err.value), str(err.value)
    assert err.value.row == row, str(err.value)


@pytest.mark.parametrize("name, says, row", BIG, ids=[b[0] for b in BIG])
def test_each_hostile_large_file_gets_a_message(big_files, name, says, row):
    with pytest.raises(DataError) as err:
        read_ratings(big_files / name)
    assert says in str(err.value) and err.value.row == row, str(err.value)


def test_a_wide_sheet_of_12000_item_columns_reads_as_a_matrix(tmp_path):
    """It said "the file is empty": its header line is longer than the sample the separator was sniffed from."""
    rng = np.random.default_rng(0)
    grid = np.full((30, 12_000), "", dtype=object)
    for u in range(30):
        grid[u, rng.choice(12_000, 40, replace=False)] = rng.integers(1, 6, 40).astype(str)
    frame = pd.DataFrame(grid, columns=[f"item{k}" for k in range(12_000)])
    frame.insert(0, "user", [f"u{u}" for u in range(30)])
    frame.to_csv(tmp_path / "wide.csv", index=False)
    r = read_ratings(tmp_path / "wide.csv")
    assert r.n_ratings == 1200 and r.df["user"].nunique() == 30 and r.df["item"].iloc[0].startswith("item")


def test_a_stray_latin1_byte_keeps_the_utf8_ids_and_names_its_line(tmp_path):
    """One Latin-1 byte turned every UTF-8 id into mojibake behind a generic warning."""
    lines = ["user,item,rating"] + [f"Zoë{u},{u % 7},{u % 5 + 1}" for u in range(60)]
    data = ("\n".join(lines) + "\n").encode("utf-8").replace("Zoë41".encode(), b"Zo\xeb41")
    r = read_ratings(data, name="mixed.csv")
    assert set(r.df["user"]) == {f"Zoë{u}" for u in range(60)}  # every id, the stray one too
    assert any("line 43" in w and "1 byte" in w for w in r.warnings), r.warnings


def test_a_stray_latin1_byte_in_a_later_block(tmp_path, monkeypatch):
    import cf_core.data.encoding as data_module

    monkeypatch.setattr(data_module, "_BLOCK_BYTES", 256)
    lines = ["user,item,rating"] + [f"Zoë{u},{u % 7},{u % 5 + 1}" for u in range(300)]
    path = tmp_path / "mixed.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8").replace("Zoë250,".encode(), b"Zo\xeb250,"))
    r = read_ratings(path)
    assert set(r.df["user"]) == {f"Zoë{u}" for u in range(300)}
    assert any("line 252" in w for w in r.warnings), r.warnings


def test_utf16_and_json_lines_are_read(tmp_path):
    r = read_ratings(GOOD.replace(",", "\t").encode("utf-16"), name="excel-unicode.txt")
    assert r.n_ratings == 29 * 9
    lines = "".join(json.dumps({"reviewerID": f"A{k % 9}", "asin": f"B{k % 13}", "overall": k % 5 + 1}) + "\n"
                    for k in range(60))
    assert read_ratings(lines.encode(), name="reviews.json").n_ratings == 60


def test_decimal_commas_are_read_and_said():
    """A semicolon file with decimal commas (Excel in much of Europe) failed with "not a number: '4,0'"."""
    r = read_ratings(b"user;item;rating\n1;2;4,5\n2;3;3,5\n3;3;2\n", name="european.csv")
    assert r.df["rating"].tolist() == [4.5, 3.5, 2.0] and any("decimal commas" in w for w in r.warnings)


def test_an_outlier_among_normal_ratings_is_warned_about():
    r = read_ratings(_with_line(5, "99,4,40000").encode(), name="typo.csv")
    assert any("far outside" in w and "40000" in w for w in r.warnings), r.warnings
    assert not any("far outside" in w for w in read_ratings(GOOD.encode()).warnings)


@pytest.mark.parametrize("name, content, says, row", [f for f in FILES if f[0].endswith((".csv", ".txt"))][:12],
                         ids=[f[0] for f in FILES if f[0].endswith((".csv", ".txt"))][:12])
def test_hostile_items_files_get_a_message(tmp_path, name, content, says, row):
    path = tmp_path / name
    path.write_bytes(content)
    try:
        read_items(path)
    except DataError as exc:
        assert name in str(exc)


# ---------------------------------------------------------------------------------------------- the CLI


def cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["train", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("name, content, says, row", FILES, ids=[f[0] for f in FILES])
def test_the_cli_says_error_and_exits_2_for_each_hostile_file(tmp_path, capsys, name, content, says, row):
    path = tmp_path / name
    path.write_bytes(content)
    code, out, err = cli(capsys, "--ratings", str(path), "--out", str(tmp_path / "runs"), "--quiet")
    assert code == 2 and err.startswith("error: ") and says in err and not out, err


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory):
    from cf_core.datasets import synthetic

    d = tmp_path_factory.mktemp("settings")
    synthetic(n_users=120, n_items=90, n_ratings=4000, n_factors=3, seed=3).ratings.to_csv(d / "r.csv", index=False)
    return d / "r.csv"


SETTINGS = [
    (["--valid-frac", "-0.1"], "valid-frac"),
    (["--valid-frac", "1.5"], "valid-frac"),
    (["--model", "nn", "--layers", "0"], "at least 1 unit"),
    (["--model", "nn", "--layers", "64,-3"], "at least 1 unit"),
    (["--factors", "0"], "n_factors"),
    (["--lr", "-1", "--optimizer", "adam"], "lr must be positive"),
    (["--epochs", "0"], "epochs"),
    (["--batch-size", "0", "--optimizer", "adam"], "batch_size"),
    (["--model", "nn", "--dropout", "1.5"], "dropout"),
    (["--y-range", "5,1", "--optimizer", "adam"], "y_range"),
    (["--betas", "1,1", "--optimizer", "adam"], "betas"),
    (["--wd", "-1"], "wd must be"),
    (["--model", "nn", "--optimizer", "gibbs"], "Gibbs sampling fits the dot-product models only"),
    (["--device", "tpu"], "device"),
]


@pytest.mark.parametrize("args, says", SETTINGS, ids=[" ".join(a) for a, _ in SETTINGS])
def test_the_cli_refuses_each_bad_setting(ratings_file, tmp_path, capsys, args, says):
    with pytest.raises(SystemExit) as exit_:  # argparse's own refusals exit 2 too
        code, out, err = cli(capsys, "--ratings", str(ratings_file), "--out", str(tmp_path), "--quiet", *args)
        raise SystemExit(code)
    err = capsys.readouterr().err if exit_.value.code == 2 and "err" not in locals() else err
    assert exit_.value.code == 2 and says in err, err
    assert not (tmp_path / "index.sqlite").exists() or not RunStore(tmp_path).list_all(ADMIN)


def test_a_setting_too_large_for_memory_is_refused_with_the_figure(monkeypatch):
    """The Bayesian fit with 1024 factors asked for one 13.9 GB block and ended in an allocator traceback."""
    monkeypatch.setattr(cost_module, "available_bytes", lambda device: 8 << 30)
    stats = DataStats(943, 1682, 80_000, 1, 5, 3.5)
    with pytest.raises(TooCostly, match=r"about [\d.]+ GB of memory .* 8.0 GB free"):
        check_cost(resolve(TrainConfig(n_factors=1024), stats), stats, "cpu")
    assert check_cost(resolve(TrainConfig(), stats), stats, "cpu") == []  # the default fits easily


def test_too_little_memory_for_the_implicit_blocks_says_to_turn_them_off(monkeypatch):
    """It said "use fewer factors" at the default 10, where nearly all the memory was the implicit blocks'."""
    monkeypatch.setattr(cost_module, "available_bytes", lambda device: 1 << 30)
    stats = DataStats(60_000, 20_000, 1_900_000, 1, 5, 3.5)
    with pytest.raises(TooCostly, match=r"most of it for learning from what each person rated .* --no-implicit"):
        check_cost(resolve(TrainConfig(), stats), stats, "cpu")
    assert check_cost(resolve(TrainConfig(implicit=False), stats), stats, "cpu") == []


def test_a_batch_of_one_is_refused_with_the_time_it_would_take():
    """Batch size 1 held the only job slot for over 15 minutes an epoch."""
    stats = DataStats(943, 1682, 80_000, 1, 5, 3.5)
    with pytest.raises(TooCostly, match=r"80,000 steps an epoch: about .* Use a batch size of at least"):
        check_cost(resolve(TrainConfig(optimizer="adam", batch_size=1), stats), stats, "cpu")
    slow = check_cost(resolve(TrainConfig(optimizer="adam", batch_size=2, epochs=10), stats), stats, "cpu")
    assert slow and "min" in slow[0]  # long but not absurd: a warning with the estimate
    assert check_cost(resolve(TrainConfig(optimizer="adam"), stats), stats, "cpu") == []


def test_the_cli_refuses_a_setting_too_large_for_memory(ratings_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cost_module, "available_bytes", lambda device: 1 << 20)
    code, out, err = cli(capsys, "--ratings", str(ratings_file), "--out", str(tmp_path), "--factors", "64", "--quiet")
    assert code == 2 and "GB of memory" in err and not out, err


def test_a_full_disk_is_an_error_not_a_traceback(ratings_file, tmp_path, capsys, monkeypatch):
    import cf_core.store as store_module

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "runs"))

    monkeypatch.setattr(store_module.RunStore, "write_bytes", full)
    code, out, err = cli(capsys, "--ratings", str(ratings_file), "--out", str(tmp_path / "runs"), "--epochs", "2",
                         "--quiet")
    assert code == 2 and err.startswith("error: No space left on device") and not out, err
    assert RunStore(tmp_path / "runs").list_all(ADMIN) == []


def test_the_cli_prints_the_readers_warnings(tmp_path, capsys):
    path = tmp_path / "dups.csv"
    path.write_text(GOOD + "1,1,5\n")
    code, out, err = cli(capsys, "--ratings", str(path), "--out", str(tmp_path / "runs"), "--epochs", "2", "--quiet")
    assert code == 0 and "warning: 1 (user, item) pairs were rated more than once" in err, err


def test_a_diverged_fit_is_never_saved(ratings_file, tmp_path, capsys):
    code, out, err = cli(capsys, "--ratings", str(ratings_file), "--out", str(tmp_path / "runs"), "--optimizer", "sgd",
                         "--lr", "1e6", "--epochs", "2", "--quiet")
    assert code == 2 and "diverged" in err and not out, err
    assert RunStore(tmp_path / "runs").list_all(ADMIN) == []


def test_a_fit_no_better_than_the_mean_is_saved_with_a_warning(tmp_path, capsys):
    rng = np.random.default_rng(0)  # ratings with no structure at all: nothing beats the mean
    frame = pd.DataFrame({"user": rng.integers(0, 150, 3000), "item": rng.integers(0, 150, 3000),
                          "rating": rng.integers(1, 6, 3000)}).drop_duplicates(["user", "item"])
    frame.to_csv(tmp_path / "noise.csv", index=False)
    code, out, err = cli(capsys, "--ratings", str(tmp_path / "noise.csv"), "--out", str(tmp_path / "runs"),
                         "--epochs", "3", "--quiet")
    assert code == 0 and "no better than giving everyone the mean" in err
    assert json.loads(out.splitlines()[-1])["no_better_than_the_mean"] is True


def test_what_a_person_sees_from_the_cli_is_one_line(tmp_path):
    (tmp_path / "bad.csv").write_bytes(_with_line(7, "1,6,1e30").encode())
    p = subprocess.run([sys.executable, "-m", "cf_core", "train", "--ratings", str(tmp_path / "bad.csv"), "--out",
                        str(tmp_path / "runs")], capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "Traceback" not in p.stderr, p.stderr
    assert "row 7, column 'rating'" in p.stderr


# ------------------------------------------------------------------------------------------- the Data page


PAGE_FILES = [f for f in FILES if len(f[1]) < 1 << 20]


@pytest.mark.parametrize("name, content, says, row", PAGE_FILES, ids=[f[0] for f in PAGE_FILES])
def test_the_data_page_shows_each_hostile_file_as_a_message(app_env, name, content, says, row):
    at = upload(open_page(app(), "views/data.py"), content, name)
    assert not at.exception, at.exception[0].message
    assert at.error and name in at.error[0].value and says in at.error[0].value, [e.value for e in at.error]
    assert "dataset" not in at.session_state or at.session_state["dataset"] is None


def test_a_latin1_file_is_read_whole_as_latin1_and_fast(tmp_path):
    """Thousands of Latin-1 bytes mean a Latin-1 file: the plain codec, not one Python call per byte."""
    rows = "".join(f"café{u},thé{u % 9},{u % 5 + 1}\n" for u in range(3000))
    path = tmp_path / "latin.csv"
    path.write_bytes(("user,item,rating\n" + rows).encode("latin-1"))
    r = read_ratings(path)
    assert r.df["user"].iloc[0] == "café0" and any("not valid UTF-8; read it as Latin-1" in w for w in r.warnings)


def test_a_long_field_in_a_crlf_file_is_read_after_all(tmp_path):
    """A line longer than the parser's block is parsed again with bigger blocks; with CRLF line ends the longest
    line was measured wrong, and ragged rows were counted twice."""
    note = "x" * (3 << 20)
    lines = ["user,item,rating,note"] + [f"{u},{u % 7},{u % 5 + 1},ok" for u in range(2000)] + [f"1,99,4,{note}"]
    path = tmp_path / "long_field.csv"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    assert read_ratings(path).n_ratings == 2001
    lines[5] = "4,4,4,ok,extra"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    with pytest.raises(DataError) as err:
        read_ratings(path)
    assert err.value.row == 6 and "rows have the wrong number" not in str(err.value), str(err.value)


def test_no_outlier_warning_when_nearly_every_rating_is_one_value():
    data = ("user,item,rating\n" + "".join(f"{u},{u % 11},1\n" for u in range(3000))
            + "".join(f"{u},{u % 13 + 20},0\n" for u in range(12))).encode()
    assert not any("far outside" in w for w in read_ratings(data, name="likes.csv").warnings)


def test_too_many_epochs_are_refused_as_epochs_not_as_a_batch_size():
    stats = DataStats(943, 1682, 80_000, 1, 5, 3.5)
    with pytest.raises(TooCostly, match="use fewer epochs"):
        check_cost(resolve(TrainConfig(optimizer="adam", epochs=400_000), stats), stats, "cpu")
