"""What only the SQLite store does: its file, WAL, schema versions and default path (the
shared contract is in test_contract.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dagtier import StoreError
from dagtier.store import open_store
from dagtier.store.sqlite import SCHEMA_VERSION, SqliteStore

pytestmark = pytest.mark.anyio


def test_schema_is_versioned_and_migrations_run_once(tmp_path: Path) -> None:
    """A new file is migrated to the latest schema version; reopening changes nothing."""
    path = tmp_path / "runs.db"
    SqliteStore(path).close()
    s = SqliteStore(path)
    assert s.schema_version == SCHEMA_VERSION
    s.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
    con.close()


def test_a_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    """A file from a newer dagtier is not touched; the error names the path and the fix."""
    path = tmp_path / "runs.db"
    SqliteStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"schema version 99.*\n.*upgrade dagtier"):
        SqliteStore(path)


def test_a_file_that_is_not_a_database_gets_a_clear_error(tmp_path: Path) -> None:
    """Pointing --store at some other file says so and how to fix it."""
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not sqlite at all " * 100)
    with pytest.raises(StoreError) as info:
        open_store(path)
    assert str(path) in str(info.value) and "--store" in str(info.value)
    assert "not a dagtier store" in str(info.value)


def test_default_path_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DAGTIER_STORE overrides the default file under the user data directory."""
    from dagtier.store import default_store_path

    monkeypatch.setenv("DAGTIER_STORE", str(tmp_path / "x.db"))
    assert default_store_path() == tmp_path / "x.db"
    monkeypatch.delenv("DAGTIER_STORE")
    assert default_store_path().name == "dagtier.db" and "dagtier" in str(
        default_store_path().parent
    )
