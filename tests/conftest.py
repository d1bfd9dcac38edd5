"""Shared fixtures. Async tests run on asyncio through the anyio plugin."""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import settings

# No timed asserts in tests: hypothesis's per-example deadline (200 ms) is one, and fails at
# random on a machine shared by other jobs.
settings.register_profile("dagtier", deadline=None)
settings.load_profile("dagtier")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog globally when run in-process (CliRunner), caching its
    loggers: undo it after each test so later tests (anyone's, capture_logs too) see
    structlog's defaults."""
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _own_default_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command run without --store writes to the test's own file, never to the user data
    directory's store (whose schema another checkout of dagtier may have moved on)."""
    monkeypatch.setenv("DAGTIER_STORE", str(tmp_path_factory.mktemp("store") / "dagtier.db"))


# --- PostgreSQL: one throwaway cluster per session, a fresh database per test ---------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The admin URL of a throwaway PostgreSQL cluster (unix socket only), removed after the
    session. Skips (fails under CI, which sets DAGTIER_REQUIRE_POSTGRES) without PostgreSQL."""
    import pgcluster

    missing = None
    if importlib.util.find_spec("psycopg") is None:
        missing = "psycopg is not installed (pip install 'dagtier[postgres]')"
    elif pgcluster.find_bindir() is None:
        missing = "PostgreSQL server binaries not found (apt-get install postgresql)"
    if missing is not None:
        if os.environ.get(pgcluster.REQUIRE_ENV):
            pytest.fail(f"{pgcluster.REQUIRE_ENV} is set but {missing}")
        pytest.skip(missing)
    with pgcluster.cluster(fsync=False) as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """The URL of a new, empty database on the session's cluster, dropped after the test."""
    import pgcluster

    name = f"t_{uuid.uuid4().hex[:12]}"
    url = pgcluster.create_database(postgres_server, name)
    yield url
    pgcluster.drop_database(postgres_server, name)


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a durable store lives, once per kind: a SQLite file path, a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    url: str = request.getfixturevalue("postgres_url")
    return url
