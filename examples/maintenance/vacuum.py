from prefect import flow


@flow
def vacuum_warehouse(schemas: list[str] | None = None, analyze: bool = True) -> None:
    """Reclaim space in the warehouse schemas."""
    print(f"vacuum {schemas or 'all schemas'} analyze={analyze}")
