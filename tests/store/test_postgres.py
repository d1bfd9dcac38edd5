"""What only the PostgreSQL store does: its URL (never its password) in errors, schema
versions, and being picked from the URL."""

from __future__ import annotations

import socket

import pytest
import structlog
from typer.testing import CliRunner

from dagtier import StoreError
from dagtier.cli import app
from dagtier.store import open_store
from dagtier.store.postgres import SCHEMA_VERSION, PostgresStore, redact_url

pytestmark = pytest.mark.anyio

psycopg = pytest.importorskip("psycopg", reason="the PostgreSQL store needs dagtier[postgres]")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once closed


def test_an_unreachable_server_is_named_without_its_password() -> None:
    """Opening a URL where nothing listens fails at once, naming the URL, never the password."""
    url = f"postgresql://alice:s3cr3t-pw@127.0.0.1:{_closed_port()}/runs"
    with pytest.raises(StoreError) as info:
        open_store(url)
    msg = str(info.value)
    assert "s3cr3t-pw" not in msg
    assert f"postgresql://alice:***@127.0.0.1:{url.split(':')[3]}" in msg
    assert "cannot connect" in msg and "hint:" in msg


def test_the_cli_reports_an_unreachable_store_with_exit_3_and_no_password() -> None:
    """`dagtier runs --store URL` with the server down: exit 3, the URL without password."""
    url = f"postgresql://bob@127.0.0.1:{_closed_port()}/runs?password=hunter2-x"
    try:
        result = CliRunner().invoke(app, ["runs", "--store", url])
    finally:
        structlog.reset_defaults()  # the in-process CLI may configure logging for everyone
    assert result.exit_code == 3
    assert "hunter2-x" not in result.output
    assert "password=***" in result.output and "cannot connect" in result.output


def test_redact_url_hides_both_password_forms() -> None:
    """user:password@ and ?password= are both replaced; a URL without one is unchanged."""
    assert redact_url("postgresql://u:p@h:5/d?password=q&x=1") == (
        "postgresql://u:***@h:5/d?password=***&x=1"
    )
    assert redact_url("postgresql:///d?host=/tmp/s") == "postgresql:///d?host=/tmp/s"


def test_the_environment_url_picks_postgres(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DAGTIER_STORE=postgresql://... opens the PostgreSQL store."""
    monkeypatch.setenv("DAGTIER_STORE", postgres_url)
    store = open_store()
    assert isinstance(store, PostgresStore)
    assert store.schema_version == SCHEMA_VERSION
    store.close()


def test_migrations_run_once_and_a_newer_schema_is_refused(postgres_url: str) -> None:
    """Reopening leaves one version row; a database from a newer dagtier is refused."""
    PostgresStore(postgres_url).close()
    PostgresStore(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as con:
        assert con.execute("SELECT COUNT(*) FROM schema_version").fetchone() == (1,)
        con.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match=r"schema version 99.*\n.*upgrade dagtier"):
        PostgresStore(postgres_url)
