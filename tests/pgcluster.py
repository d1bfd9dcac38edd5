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
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{root}' "
            f"-c fsync={'on' if fsync else 'off'} -c max_connections=50"
        )
        subprocess.run(
            [
                *prefix,
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        try:
            yield f"postgresql://{superuser}@/postgres?host={root}"
        finally:
            subprocess.run(
                [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
            )
    except subprocess.CalledProcessError as exc:
        log = root / "server.log"
        detail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise RuntimeError(
            f"starting PostgreSQL failed: {exc.cmd[len(prefix)]}: "
            f"{exc.stderr.decode(errors='replace')}{detail}"
        ) from None
    finally:
        shutil.rmtree(root, ignore_errors=True)


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
