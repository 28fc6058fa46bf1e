"""The CLI end to end on generated data, as a subprocess (as a user runs it)."""
import json
import subprocess
import sys

import pytest

from cf_core.datasets import synthetic


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cf_core", *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    data = synthetic(n_users=80, n_items=60, n_ratings=3000, n_factors=3, seed=2)
    data.ratings.rename(columns={"user": "userId", "item": "movieId"}).to_csv(d / "ratings.csv", index=False)
    ids = sorted(data.ratings["item"].unique())
    (d / "items.csv").write_text("item_id,title,year,genres\n" + "".join(f"{i},Film {i},2000,Drama\n" for i in ids))
    return d


@pytest.fixture(scope="module")
def trained_run(files):
    p = run("train", "--ratings", str(files / "ratings.csv"), "--items", str(files / "items.csv"), "--epochs", "3",
            "--out", str(files / "runs"))
    assert p.returncode == 0, p.stderr
    return p


def test_train_prints_json_last_and_progress_on_stderr(trained_run):
    out = json.loads(trained_run.stdout.strip().splitlines()[-1])
    for key in ("valid_rmse", "valid_mae", "train_seconds", "epochs", "device", "n_users", "n_items", "n_train",
                "n_valid", "n_valid_cold", "run_id"):
        assert key in out
    assert out["epochs"] == 3 and out["n_train"] == 2400 and out["n_valid"] == 600 and out["device"] == "cpu"
    assert 0 < out["valid_rmse"] < 0.9 * out["valid_baseline_rmse"]  # three sweeps, well below the mean's
    assert out["optimizer"] == "gibbs" and "sweep 3/3" in trained_run.stderr  # the default fit of the dot product
    ranked = out["ranking"]  # every run's top-10 figures, the model's and the most popular items'
    assert ranked["k"] == 10 and ranked["users"] == 80 and ranked["relevant"] == 600
    for who in ("model", "most_popular"):
        assert set(ranked[who]) == {"precision", "recall", "ndcg", "map", "coverage"}
        assert all(0 <= v <= 1 for v in ranked[who].values())


def test_a_ranking_k_below_one_is_refused_before_training(files):
    p = run("train", "--ratings", str(files / "ratings.csv"), "--k", "0", "--out", str(files / "runs_k"))
    assert p.returncode == 2 and "--k: must be at least 1, not 0" in p.stderr


def test_recommend_and_similar(files, trained_run):
    run_id = json.loads(trained_run.stdout.strip().splitlines()[-1])["run_id"]
    p = run("recommend", "--run", run_id, "--user", "1", "-n", "4", "--json", "--out", str(files / "runs"))
    assert p.returncode == 0, p.stderr
    rows = [json.loads(line) for line in p.stdout.splitlines()]
    assert len(rows) == 4 and rows[0]["title"].startswith("Film ")
    p = run("similar", "--run", run_id, "--item", "1", "-n", "3", "--out", str(files / "runs"))
    assert p.returncode == 0 and "similarity" in p.stdout


def test_separate_valid_file_and_options(files):
    p = run("train", "--ratings", str(files / "ratings.csv"), "--valid", str(files / "ratings.csv"), "--model", "nn",
            "--factors", "8", "--layers", "16,8", "--dropout", "0.1", "--optimizer", "adamw", "--epochs", "1",
            "--batch-size", "256", "--device", "cpu", "--out", str(files / "runs2"), "--quiet", "--no-pretrain")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["model"] == "nn" and out["n_valid"] == 3000 and out["n_valid_cold"] == 0
    assert out["optimizer"] == "adamw" and out["pretrain"] is False
    assert all(line.startswith("warning: ") for line in p.stderr.splitlines())  # --quiet: no progress


@pytest.mark.parametrize("args, message", [
    (["train", "--ratings", "does-not-exist.csv"], "does-not-exist.csv"),
    (["train", "--ratings", "{bad}"], "rating"),
    (["recommend", "--run", "nonexistent_run_id_123", "--user", "1"], "no run"),
    (["train", "--ratings", "{good}", "--device", "tpu"], "device"),
])
def test_bad_input_one_line_error_exit_2(files, args, message):
    (files / "bad.csv").write_text("user,item,score_x\n1,2,3\n")
    args = [a.replace("{bad}", str(files / "bad.csv")).replace("{good}", str(files / "ratings.csv")) for a in args]
    p = run(*args, "--out", str(files / "runs3")) if args[0] != "train" or "--out" not in args else run(*args)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_a_diverged_fit_is_an_error_not_a_run(tmp_path):
    import subprocess
    import sys

    from cf_core.datasets import synthetic

    path = tmp_path / "r.csv"
    synthetic(n_users=50, n_items=40, n_ratings=800, n_factors=2, seed=0).ratings.to_csv(path, index=False)
    out = subprocess.run([sys.executable, "-m", "cf_core", "train", "--ratings", str(path), "--optimizer", "sgd",
                          "--lr", "1e12", "--epochs", "2", "--out", str(tmp_path / "runs"), "--quiet"],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: training diverged"), out.stderr
    assert "Traceback" not in out.stderr and not list((tmp_path / "runs").glob("*/meta.json"))


def test_train_with_what_each_user_rated(files):
    p = run("train", "--ratings", str(files / "ratings.csv"), "--implicit", "--epochs", "4",
            "--out", str(files / "runs3"), "--quiet")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["optimizer"] == "gibbs" and out["valid_rmse"] < out["valid_baseline_rmse"]
    p = run("train", "--ratings", str(files / "ratings.csv"), "--implicit", "--optimizer", "adam", "--out",
            str(files / "runs3"))
    assert p.returncode == 2 and "Bayesian fit" in p.stderr


def test_columns_can_be_named_on_the_command_line(tmp_path):
    """--user-col and the rest choose the columns; without them, a header in unknown words is read by its values and
    the CLI says what it took."""
    data = synthetic(n_users=40, n_items=30, n_ratings=800, n_factors=2, seed=1).ratings
    data = data.assign(rating=data["rating"].round().clip(1, 5))
    data[["rating", "item", "user"]].rename(columns={"rating": "nota", "item": "cosa", "user": "quien"}) \
        .to_csv(tmp_path / "r.csv", index=False)
    named = run("train", "--ratings", str(tmp_path / "r.csv"), "--user-col", "quien", "--item-col", "cosa",
                "--rating-col", "nota", "--epochs", "2", "--out", str(tmp_path / "runs"))
    assert named.returncode == 0, named.stderr
    assert "from their values" not in named.stderr
    out = json.loads(named.stdout.strip().splitlines()[-1])
    assert out["n_users"] == data["user"].nunique() and out["n_items"] == data["item"].nunique()
    guessed = run("train", "--ratings", str(tmp_path / "r.csv"), "--epochs", "2", "--out", str(tmp_path / "runs"))
    assert guessed.returncode == 0, guessed.stderr
    assert "'nota' as the rating" in guessed.stderr and "--user-col" in guessed.stderr
    wrong = run("train", "--ratings", str(tmp_path / "r.csv"), "--user-col", "nobody", "--out", str(tmp_path / "runs"))
    assert wrong.returncode == 2 and "no column 'nobody' for the user" in wrong.stderr
