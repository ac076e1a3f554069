"""executors: where a phase runs: a local process pool, or a Dask cluster."""
