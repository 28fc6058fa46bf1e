"""A throw-away PostgreSQL server for tests: initdb into a temp dir, pg_ctl start on a free port, stopped after.

Debian's `postgresql` package provides the binaries (`make test` installs it). As root, the server runs as the
`postgres` user (PostgreSQL refuses to run as root).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`with PostgresServer() as pg: pg.new_database()` -> a postgresql:// URL of an empty database."""

    def __init__(self):
        self.initdb, self.pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not (self.initdb and self.pg_ctl):
            raise FileNotFoundError("PostgreSQL's initdb and pg_ctl are not installed "
                                    "(Debian: apt-get install postgresql)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="cs-pg-")
        self.data = os.path.join(self.dir, "data")
        self.as_user = os.geteuid() == 0

    def _run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = (["runuser", "-u", "postgres", "--"] if self.as_user else []) + list(argv)
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def __enter__(self) -> PostgresServer:
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self._run(self.initdb, "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(self.pg_ctl, "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"),
                  "-w", "-t", "60", "start")
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url, autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def __exit__(self, *exc) -> None:
        self._run(self.pg_ctl, "-D", self.data, "-m", "immediate", "stop", check=False)
        time.sleep(0.2)
        shutil.rmtree(self.dir, ignore_errors=True)
