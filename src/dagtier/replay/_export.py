"""``dagtier export-outcomes``: dagtier's own history in the outcomes format.

Each node of each stored run becomes a query (``RUN_ID/NODE_ID``, task = the node's task
key); each of its judged attempts becomes a row: the model that answered, quality 1 if the
answer passed its checks and 0 if it failed, and the cost of the model call (the judge's
cost is left out: a replay charges its own judge). Attempts that were never checked, or
that failed for availability, say nothing about quality and are left out. Replaying the
file then compares policies on your own traffic before you switch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from .._exceptions import StoreError
from ..store import RunStore, is_postgres_url
from ._data import OutcomeRow

_ALL_RUNS = 1 << 62


def open_run_store(path: str | None) -> Any:
    """The run store at ``path``, a SQLite file or a PostgreSQL URL (default:
    ``$DAGTIER_STORE`` or the user data dir).

    Raises:
        StoreError: no such file, or this build has no SQLite store.
    """
    from .. import store as store_mod

    opener = getattr(store_mod, "open_store", None)
    if opener is None:  # pragma: no cover - only before the durable store is merged
        raise StoreError("this build of dagtier has no persistent run store to export from")
    if path is not None and not is_postgres_url(path) and not Path(path).expanduser().is_file():
        # opening would create an empty store: say the file is missing instead
        raise StoreError(f"no store file at {path}; pass the file given to `dagtier run --store`")
    return opener(path)


async def export_rows(store: RunStore) -> Iterator[OutcomeRow]:
    """Rows for every judged attempt of every run in ``store``, oldest run first."""
    runs = await store.list_runs(limit=_ALL_RUNS)
    rows: list[OutcomeRow] = []
    for rec in sorted(runs, key=lambda r: r.started_at):
        loaded = await store.load_run(rec.run_id)
        if loaded is None:
            continue
        _, nodes = loaded
        for node_id, result in nodes.items():
            seen: set[str] = set()
            for att in result.attempts:
                if att.verdict not in ("pass", "fail") or att.model in seen:
                    continue
                seen.add(att.model)
                rows.append(
                    OutcomeRow(
                        f"{rec.run_id}/{node_id}",
                        result.task_key or f"{rec.workflow}/{node_id}",
                        att.model,
                        1.0 if att.verdict == "pass" else 0.0,
                        att.cost,
                        False,
                    )
                )
    return iter(rows)


def export_store_outcomes(store_path: str | None, out: IO[bytes], *, compress: bool) -> int:
    """Write the answer attempts of the store at ``store_path`` (None: the default one) to
    ``out`` in the outcomes format ``dagtier replay`` reads. Returns the row count."""
    import anyio

    from ._data import write_rows

    async def collect() -> list[object]:
        store = open_run_store(store_path)
        try:
            return list(await export_rows(store))
        finally:
            close = getattr(store, "aclose", None) or getattr(store, "close", None)
            if close is not None:
                res = close()
                if hasattr(res, "__await__"):
                    await res

    rows = anyio.run(collect)
    return write_rows((r for r in rows if isinstance(r, OutcomeRow)), out, compress=compress)
