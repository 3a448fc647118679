"""How solves run: executors (local worker processes, Dask) behind one protocol."""
