"""The store when things go wrong, and where else it can live: a corrupt index, a run with a missing or truncated
file, a save killed or failing on a full disk, leftovers of dead saves, runs at an fsspec URL, the index on
PostgreSQL. Nothing half-made is ever listed, a damaged run is listed as damaged and can be deleted, and the
index can be rebuilt from the runs' own folders."""
import errno
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cf_core.access import LOCAL, Principal
from cf_core.store import RunDamaged, RunStore, StoreDamaged

ALICE, BOB = Principal("alice"), Principal("bob")
ROOT = Path(__file__).resolve().parents[1]


def _cli(*args, root):
    return subprocess.run([sys.executable, "-m", "cf_core", *args, "--out", str(root)], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)


def test_a_corrupt_index_says_so_in_words_and_is_rebuilt_from_the_run_folders(tmp_path, trained):
    store = RunStore(tmp_path)
    mine = store.save(trained, owner="alice", name="alice's", dataset="planted", metrics={"valid_rmse": 0.5})
    theirs = store.save(trained, owner="bob", name="bob's")
    (tmp_path / "runs.sqlite").write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"runs.sqlite{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreDamaged, match=r"cannot be read .*store check --repair"):
        RunStore(tmp_path)
    check = _cli("store", "check", root=tmp_path)
    assert check.returncode == 1 and "is damaged" in check.stdout and "--repair" in check.stdout
    repair = _cli("store", "check", "--repair", root=tmp_path)
    assert repair.returncode == 0, repair.stderr
    assert "indexed it again" in repair.stdout and list(tmp_path.glob("runs.sqlite.damaged-*"))
    rebuilt = RunStore(tmp_path)
    from cf_core.jobs import JobQueue

    assert JobQueue(rebuilt).claim("w", "cpu") is None  # the queue's tables are back too
    (info,) = rebuilt.list(ALICE)
    assert (info.id, info.name, info.dataset, info.metrics) == (mine, "alice's", "planted", {"valid_rmse": 0.5})
    assert [r.id for r in rebuilt.list(BOB)] == [theirs]  # owners come back from each run's meta.json
    assert _cli("store", "check", root=tmp_path).stdout.startswith("all well: 2 run folder(s)")


def test_a_run_with_a_missing_or_truncated_file_is_listed_as_damaged_and_can_be_deleted(tmp_path, trained):
    store = RunStore(tmp_path)
    no_meta, truncated, whole = (store.save(trained, owner="local", name=n) for n in ("a", "b", "c"))
    (tmp_path / no_meta / "meta.json").unlink()
    weights = tmp_path / truncated / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    assert len(store.list(LOCAL)) == 3  # the list itself never reads a run's files
    assert store.problem(no_meta) == "meta.json is missing"
    assert "weights.safetensors is truncated" in store.problem(truncated)
    assert store.problem(whole) is None
    for run_id in (no_meta, truncated):
        with pytest.raises(RunDamaged, match="damaged .* Its owner can delete it"):
            store.load(run_id, LOCAL)
    with pytest.raises(RunDamaged):
        store.history(no_meta, LOCAL)
    report = "\n".join(store.check())
    assert no_meta in report and truncated in report and whole not in report
    store.delete(no_meta, LOCAL), store.delete(truncated, LOCAL)
    assert [r.id for r in store.list(LOCAL)] == [whole] and not (tmp_path / no_meta).exists()


def test_a_save_that_fails_on_a_full_disk_leaves_nothing(tmp_path, trained, monkeypatch):
    store = RunStore(tmp_path)

    def full(path, data):
        if path.endswith("weights.safetensors"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    real = store.write_bytes
    monkeypatch.setattr(store, "write_bytes", full)
    with pytest.raises(OSError, match="No space left"):
        store.save(trained, owner="local")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("runs.sqlite")) == []
    assert store.list_all(LOCAL) == []
    # An index that refuses the row (a lost database) takes the written folder back too.
    monkeypatch.setattr(store, "write_bytes", real)
    monkeypatch.setattr(store, "_connect", lambda: (_ for _ in ()).throw(OSError("the database went away")))
    with pytest.raises(OSError, match="went away"):
        store.save(trained, owner="local")
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("runs.sqlite")) == []


def test_leftovers_of_killed_saves_are_cleaned_but_a_live_save_is_not(tmp_path):
    import socket

    store = RunStore(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    dead_save = f".tmp-AA-AAAAAAAAAAAAAAAAAAA~{dead.pid}~{host}"
    live_save = f".tmp-CC-CCCCCCCCCCCCCCCCCCC~{os.getpid()}~{host}"
    elsewhere = ".tmp-DDDDDDDDDDDDDDDDDDDDDD~123~web-1.other-machine"  # maybe alive: only age may remove it
    for name in (dead_save, ".tmp-BBBBBBBBBBBBBBBBBBBBBB", live_save, elsewhere):  # B: a name from before pids
        (tmp_path / name).mkdir()
        (tmp_path / name / "weights.safetensors").write_bytes(b"x" * 1000)
    assert sorted(store.clean_leftovers()) == [dead_save, ".tmp-BBBBBBBBBBBBBBBBBBBBBB"]
    assert sorted(p.name for p in tmp_path.glob(".tmp-*")) == sorted([live_save, elsewhere])
    old = time.time() - 7 * 3600
    os.utime(tmp_path / elsewhere, (old, old))
    assert store.clean_leftovers() == [elsewhere]
    assert store.list_all(LOCAL) == []  # and no leftover was ever a run


def test_runs_at_an_fsspec_url(tmp_path, trained, split_planted, items_meta):
    """memory:// is an fsspec filesystem like s3:// (no rename: the index row is what makes a run exist)."""
    train, valid = split_planted
    store = RunStore("memory://collab-test/runs", db=tmp_path / "index.sqlite")
    run_id = store.save(trained, owner="alice", name="remote", items=items_meta, valid=valid)
    run = store.load(run_id, ALICE)
    assert run.items["title"].tolist() == items_meta["title"].tolist() and len(run.valid) == len(valid)
    assert store.problem(run_id) is None and store.check() == []
    store.delete(run_id, ALICE)
    assert store.list(ALICE) == [] and not store.fs.exists(store._dir(run_id))
    with pytest.raises(ValueError, match="COLLAB_STUDIO_DB"):
        RunStore("memory://collab-test/other")  # no index beside an object store: one must be named


def test_the_index_on_postgresql_keeps_owners_shares_and_visits(tmp_path, trained, postgres):
    url = postgres.new_database()
    store = RunStore(tmp_path, db=url)
    run_id = store.save(trained, owner="alice", name="on pg")
    link = store.share(run_id, ALICE)
    for _ in range(2):  # a second visit updates the visit, it is not a duplicate key
        store.open_share(link.token, BOB)
    other = RunStore(tmp_path, db=url)  # another replica
    assert [r.id for r in other.shared_with(BOB)] == [run_id] and other.info(run_id, BOB).name == "on pg"
    other.revoke(link.token, ALICE)
    assert store.shared_with(BOB) == []
    from cf_core.users import UserDirectory

    users = UserDirectory(url)
    users.add("carol", "a long password")
    users.add("carol", "another long password", replace=True)
    assert users.verify("carol", "another long password") is not None and len(users) == 1
