"""A throwaway PostgreSQL cluster for tests and benches: initdb in a temporary directory,
listening on a unix socket in that directory only (no TCP port), removed afterwards.

PostgreSQL refuses to run as root; as root the cluster runs as the ``postgres`` user (or
``nobody``) through ``runuser``. Needs the server binaries (Debian: ``apt-get install
postgresql``); :func:`find_bindir` returns None without them.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REQUIRE_ENV = "DAGTIER_REQUIRE_POSTGRES"
"""Set (by CI) to fail instead of skipping when PostgreSQL cannot be started."""


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl (PATH first, then Debian's versioned dirs)."""
    found = shutil.which("initdb")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += [Path(d) for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    for d in candidates:
        if (d / "initdb").is_file() and (d / "pg_ctl").is_file():
            return d
    return None


def _as_user() -> list[str]:
    """The command prefix that runs the server as a non-root user ([] when not root)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")


@contextmanager
def cluster(*, fsync: bool = True) -> Iterator[str]:
    """Start a cluster; yields the URL of its ``postgres`` database (unix socket, trust
    authentication for the local user). Stops and deletes it on exit.

    Args:
        fsync: off makes commits cheaper (tests that never crash the server); keep it on to
            measure what a real server costs.
    """
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL server binaries not found (apt-get install postgresql)")
    prefix = _as_user()
    root = Path(tempfile.mkdtemp(prefix="dagtier-pg-"))
    data = root / "data"
    if prefix:
        user = pwd.getpwnam(prefix[2])
        os.chown(root, user.pw_uid, user.pw_gid)
    superuser = "dagtier"
    try:
        subprocess.run(
            [
                *prefix,
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                superuser,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
        )
        # in the configuration file, not on pg_ctl's command line, so start() restarts the
        # server as it was
        with open(data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write(
                f"listen_addresses = ''\nunix_socket_directories = '{root}'\n"
                f"fsync = {'on' if fsync else 'off'}\nmax_connections = 50\n"
            )
        url = f"postgresql://{superuser}@/postgres?host={root}"
        start(url)
        try:
            yield url
        finally:
            stop(url)
    except subprocess.CalledProcessError as exc:
        log = root / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(
            f"starting PostgreSQL failed: {exc.cmd[len(prefix)]}: "
            f"{exc.stderr.decode(errors='replace')}{detail}"
        ) from None
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _pg_ctl(url: str, *args: str, check: bool = True) -> None:
    """Run pg_ctl on the cluster whose URL (from :func:`cluster`) is ``url``."""
    bindir = find_bindir()
    assert bindir is not None
    root = Path(url.rsplit("host=", 1)[1])
    subprocess.run(
        [*_as_user(), str(bindir / "pg_ctl"), "-D", str(root / "data"), *args],
        check=check,
        capture_output=True,
    )


def start(url: str) -> None:
    """Start the (stopped) cluster at ``url``; returns once it accepts connections."""
    root = Path(url.rsplit("host=", 1)[1])
    _pg_ctl(url, "-l", str(root / "server.log"), "-w", "-t", "60", "start")


def stop(url: str) -> None:
    """Stop the cluster as a crash would (``-m immediate``: its server processes quit at once,
    nothing is checkpointed, and the next start recovers from the WAL). Stopped already: no-op."""
    _pg_ctl(url, "-m", "immediate", "-w", "stop", check=False)


def create_database(admin_url: str, name: str) -> str:
    """Create database ``name``; returns its URL (same server and user)."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    return admin_url.replace("/postgres?", f"/{name}?", 1)


def drop_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
