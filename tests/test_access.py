"""Ownership enforced in cf_core: the store (list, info, load, rename, delete, share links) and the job manager
(progress, stop) refuse a stranger with a clear PermissionDenied, whatever a page shows or hides."""
import time

import pytest

from cf_core.access import ANONYMOUS, LOCAL, PermissionDenied, Principal
from cf_core.config import TrainConfig
from cf_core.jobs import JobQueue
from cf_core.store import RunStore, ShareError
from tests.conftest import start_worker

ALICE, BOB, ADMIN = Principal("alice"), Principal("bob"), Principal("root", admin=True)


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path)


@pytest.fixture
def alices_run(store, trained):
    return store.save(trained, owner="alice", name="alice's run")


def test_a_person_lists_only_their_own_runs(store, trained, alices_run):
    bobs = store.save(trained, owner="bob", name="bob's run")
    assert [r.id for r in store.list(ALICE)] == [alices_run]
    assert [r.id for r in store.list(BOB)] == [bobs]
    assert store.list(ANONYMOUS) == []
    assert {r.id for r in store.list_all(ADMIN)} == {alices_run, bobs}
    with pytest.raises(PermissionDenied, match="Only an admin"):
        store.list_all(ALICE)


def test_a_stranger_cannot_see_rename_delete_or_share(store, alices_run):
    for act in (lambda: store.info(alices_run, BOB), lambda: store.load(alices_run, BOB),
                lambda: store.history(alices_run, BOB), lambda: store.info(alices_run, ANONYMOUS)):
        with pytest.raises(PermissionDenied, match="not yours"):
            act()
    with pytest.raises(PermissionDenied, match="Only its owner or an admin may delete this run; you are bob"):
        store.delete(alices_run, BOB)
    with pytest.raises(PermissionDenied, match="rename this run"):
        store.rename(alices_run, "mine now", BOB)
    with pytest.raises(PermissionDenied, match="share this run"):
        store.share(alices_run, BOB)
    with pytest.raises(PermissionDenied, match="an anonymous visitor"):
        store.delete(alices_run, ANONYMOUS)
    assert store.info(alices_run, ALICE).name == "alice's run" and (store.root / alices_run).exists()


def test_the_owner_and_an_admin_may(store, trained, alices_run):
    store.rename(alices_run, "renamed", ALICE)
    assert store.info(alices_run, ADMIN).name == "renamed"
    other = store.save(trained, owner="alice")
    store.delete(other, ADMIN)
    assert not (store.root / other).exists() and [r.id for r in store.list(ALICE)] == [alices_run]
    assert store.info(alices_run, LOCAL).owner == "alice"  # local mode's person is an admin of everything


def test_share_links_are_read_only_capabilities(store, alices_run):
    link = store.share(alices_run, ALICE)
    assert store.check_share(link.token, Principal("carol")).run_id == alices_run
    assert store.shared_with(Principal("carol")) == []  # a check records nothing; opening the link does
    assert len(link.token) >= 43 and link.token != alices_run and not link.public  # 256 bits, not the run id
    # Signed-in Bob opens it: he may see the run, not change it.
    assert store.open_share(link.token, BOB).run_id == alices_run
    assert store.info(alices_run, BOB, link.token).owner == "alice"
    assert [r.id for r in store.shared_with(BOB)] == [alices_run] and store.list(BOB) == []
    assert store.info(alices_run, BOB).id == alices_run  # shared with him now, without the token too
    with pytest.raises(PermissionDenied):
        store.delete(alices_run, BOB)
    with pytest.raises(PermissionDenied):
        store.revoke(link.token, BOB)
    # Anonymous visitors need an open link.
    with pytest.raises(ShareError, match="for signed-in people"):
        store.info(alices_run, ANONYMOUS, link.token)
    public = store.share(alices_run, ALICE, public=True)
    assert store.load(alices_run, ANONYMOUS, public.token, device="cpu").info.id == alices_run
    assert store.shared_with(ANONYMOUS) == []
    # A token opens its own run only.
    assert [s.token for s in store.shares(alices_run, ALICE)] == [public.token, link.token]
    with pytest.raises(PermissionDenied, match="see this run's share links"):
        store.shares(alices_run, BOB)


def test_a_revoked_link_is_refused_in_plain_words(store, alices_run):
    link = store.share(alices_run, ALICE)
    store.open_share(link.token, BOB)
    store.revoke(link.token, ALICE)
    with pytest.raises(ShareError, match="revoked by the person who shared it"):
        store.open_share(link.token, BOB)
    with pytest.raises(PermissionDenied):
        store.info(alices_run, BOB)
    assert store.shared_with(BOB) == [] and store.shares(alices_run, ALICE) == []
    for junk in ("", "nope", "../../etc", "A" * 43):
        with pytest.raises(ShareError, match="does not work"):
            store.open_share(junk, BOB)


def test_a_token_does_not_open_another_run(store, trained, alices_run):
    other = store.save(trained, owner="alice", name="not shared")
    link = store.share(alices_run, ALICE, public=True)
    with pytest.raises(PermissionDenied, match="not yours"):
        store.info(other, ANONYMOUS, link.token)


def test_deleting_a_run_ends_its_links(store, alices_run):
    link = store.share(alices_run, ALICE, public=True)
    store.delete(alices_run, ALICE)
    with pytest.raises(ShareError, match="does not work"):
        store.open_share(link.token, ANONYMOUS)


def test_an_index_from_before_owners_is_upgraded(tmp_path, trained):
    import sqlite3

    con = sqlite3.connect(tmp_path / "runs.sqlite")
    con.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, name TEXT, created REAL, model TEXT, dataset TEXT, "
                "metrics TEXT, config TEXT)")
    con.execute("INSERT INTO runs VALUES ('A' || hex(randomblob(10)), 'old', 1.0, 'dotbias', '', '{}', '{}')")
    con.commit()
    con.close()
    store = RunStore(tmp_path)
    (old,) = store.list_all(ADMIN)
    assert old.owner == "" and store.list(ALICE) == []  # an old run is nobody's: only admins see it


def _wait(mgr, job, who, timeout=60):
    t0 = time.time()
    while mgr.snapshot(job.id, who).status in ("queued", "running") and time.time() - t0 < timeout:
        time.sleep(0.05)
    return mgr.snapshot(job.id, who)


def test_only_the_owner_sees_and_stops_a_job(tmp_path, split_planted):
    train, valid = split_planted
    mgr = JobQueue(RunStore(tmp_path))
    worker = start_worker(tmp_path)
    with pytest.raises(PermissionDenied, match="Sign in to train"):
        mgr.submit(train, valid, TrainConfig(epochs=1), owner=ANONYMOUS)
    job = mgr.submit(train, valid, TrainConfig(epochs=400, batch_size=64, optimizer="adam"), owner=ALICE)
    try:
        _refuse_strangers(mgr, job)
    finally:
        mgr.stop(job.id, ALICE)  # a failed assertion must not leave 400 epochs training
    snap = _wait(mgr, job, ALICE)
    assert snap.status == "stopped" and len(snap.progress.epochs) < 400
    run = RunStore(tmp_path).info(snap.run_id, ALICE)
    assert run.owner == "alice"
    with pytest.raises(PermissionDenied):
        RunStore(tmp_path).info(snap.run_id, BOB)
    with pytest.raises(KeyError):
        mgr.stop("no-such-job", ALICE)
    worker.shutdown()


def _refuse_strangers(mgr, job):
    for act, what in ((lambda: mgr.snapshot(job.id, BOB), "see this training job"),
                      (lambda: mgr.get(job.id, BOB), "see this training job"),
                      (lambda: mgr.stop(job.id, BOB), "stop this training job"),
                      (lambda: mgr.stop(job.id, ANONYMOUS), "stop this training job")):
        with pytest.raises(PermissionDenied, match=what):
            act()
    assert (mgr.jobs(BOB) == [] and [j.id for j in mgr.jobs(ALICE)] == [job.id]
            and [j.id for j in mgr.jobs(ADMIN)] == [job.id])
    t0 = time.time()
    while not mgr.snapshot(job.id, ALICE).progress.epochs and time.time() - t0 < 60:
        time.sleep(0.02)
    assert mgr.snapshot(job.id, ALICE).status == "running"  # Bob's stop did not stop it
    mgr.stop(job.id, ALICE)


def test_an_admin_may_stop_anyones_job(tmp_path, split_planted):
    train, valid = split_planted
    mgr = JobQueue(RunStore(tmp_path))
    job = mgr.submit(train, valid, TrainConfig(epochs=400, batch_size=64, optimizer="adam"), owner=ALICE)
    worker = start_worker(tmp_path)
    while mgr.snapshot(job.id, ALICE).status == "queued":
        time.sleep(0.02)
    mgr.stop(job.id, ADMIN)
    assert _wait(mgr, job, ADMIN).status == "stopped"
    worker.shutdown()


def test_uploads_are_kept_per_owner(tmp_path):
    from cf_core.uploads import UploadNotFound, UploadStore

    uploads = UploadStore(tmp_path)
    kept = uploads.save(ALICE, b"user,item,rating\n1,2,3\n", "mine.csv", b"item,title\n2,Heat\n", "items.csv",
                        {"rating": "rating"})
    assert [u.id for u in uploads.list(ALICE)] == [kept.id] and uploads.list(BOB) == []
    assert uploads.read(kept.id, ALICE) == (b"user,item,rating\n1,2,3\n", b"item,title\n2,Heat\n", None)
    later = uploads.attach(kept.id, "valid", b"user,item,rating\n1,3,4\n", "later.csv", ALICE)
    assert later.valid_name == "later.csv" and uploads.read(kept.id, ALICE)[2] == b"user,item,rating\n1,3,4\n"
    with pytest.raises(PermissionDenied):
        uploads.attach(kept.id, "items", b"item,title\n2,Hot\n", "x.csv", BOB)
    for act in (lambda: uploads.read(kept.id, BOB), lambda: uploads.get(kept.id, ANONYMOUS),
                lambda: uploads.delete(kept.id, BOB), lambda: uploads.set_roles(kept.id, {}, BOB),
                lambda: uploads.attach(kept.id, "items", b"x", "x.csv", BOB)):
        with pytest.raises(PermissionDenied, match="Only its owner or an admin"):
            act()
    with pytest.raises(PermissionDenied, match="Sign in"):
        uploads.save(ANONYMOUS, b"x", "x.csv")
    uploads.set_roles(kept.id, {"user": "u"}, ALICE)
    assert uploads.get(kept.id, ADMIN).roles == {"user": "u"}
    uploads.delete(kept.id, ALICE)
    assert uploads.list(ALICE) == [] and not (tmp_path / "uploads" / kept.id).exists()
    with pytest.raises(UploadNotFound):
        uploads.read(kept.id, ALICE)
    with pytest.raises(UploadNotFound):
        uploads.read("../../etc/passwd", ALICE)
