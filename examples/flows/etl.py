"""Nightly ETL of the order tables."""

from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger, task

from shared.utils import chunked


@task(retries=2, retry_delay_seconds=5)
def extract(table: str, day: date | None) -> list[dict]:
    return [{"table": table, "row": i, "day": str(day)} for i in range(1200)]


@task
def load(rows: list[dict], batch_size: int) -> int:
    return sum(len(batch) for batch in chunked(rows, batch_size))


@flow(name="daily-etl", log_prints=True)
def daily_etl(
    tables: list[str] = ["orders"],  # noqa: B006 - Prefect stores the default as JSON
    day: date | None = None,
    batch_size: int = 1000,
    dry_run: bool = False,
) -> int:
    """Copy a day of the source tables into the warehouse.

    Args:
        tables: Source tables to copy.
        day: The day to load; yesterday when empty.
        batch_size: Rows per insert.
        dry_run: Read, but do not write.
    """
    logger = get_run_logger()
    loaded = 0
    for table in tables:
        rows = extract(table, day)
        loaded += 0 if dry_run else load(rows, batch_size)
    logger.info("loaded %d rows from %d tables", loaded, len(tables))
    return loaded
