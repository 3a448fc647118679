"""Directories of memory-mapped arrays: how a network's derived structures (its contraction
hierarchy, snap index and prepared graph) are kept on disk beside it.

A directory holds one ``.npy`` file per array and ``meta.json``: the structure's key (its format
version and a fingerprint of what it was built from, so a directory that does not match is
rebuilt) and its scalars. Writes go to a temporary directory renamed into place, so a reader sees
a whole directory or none; reads open the arrays with ``mmap_mode="r"``, so every process that
loads the same directory (the server, its forkserver, the solve workers) shares its pages instead
of holding a copy each.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = ["cached", "read_array_dir", "sha256_of", "write_array_dir"]

T = TypeVar("T")

Arrays = dict[str, np.ndarray[Any, Any]]


def sha256_of(arrays: Iterable[npt.ArrayLike]) -> str:
    """SHA-256 of arrays' dtypes and contents, in order (a fingerprint of what a structure was
    built from)."""
    digest = hashlib.sha256()
    for arr in arrays:
        a = np.ascontiguousarray(arr)
        digest.update(str(a.dtype).encode())
        digest.update(a.data)
    return digest.hexdigest()


def write_array_dir(
    path: Path, arrays: Mapping[str, npt.ArrayLike], meta: Mapping[str, object]
) -> None:
    """Write ``arrays`` and ``meta`` to the directory ``path``, atomically (raises OSError)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, arr in arrays.items():
        np.save(tmp / f"{name}.npy", arr, allow_pickle=False)
    (tmp / "meta.json").write_text(json.dumps(dict(meta)))
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    if path.exists():
        path.rename(old)
    tmp.rename(path)
    shutil.rmtree(old, ignore_errors=True)


def read_array_dir(
    path: Path,
    key: Mapping[str, object],
    names: Iterable[str],
    make: Callable[[Arrays, dict[str, Any]], T],
    *,
    what: str,
    source: str,
    log: logging.Logger,
) -> T | None:
    """``make(arrays, meta)`` of the directory ``path`` (arrays memory-mapped), or None when its
    meta does not match ``key`` or it is unreadable — ``make`` raising OSError, ValueError,
    KeyError or TypeError (its checks) counts as unreadable. Logged to ``log`` (the structure's
    module) as ``what``; ``source`` names what the key fingerprints ("graph", "network")."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        if any(meta.get(k) != v for k, v in key.items()):
            log.info("%s %s does not match the %s: rebuilding", what, path, source)
            return None
        arrays = {
            name: np.load(path / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in names
        }
        return make(arrays, meta)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.info("%s %s unreadable (%s): rebuilding", what, path, exc)
        return None


def cached(
    cache: Path | None,
    load: Callable[[Path], T | None],
    build: Callable[[], T],
    save: Callable[[T, Path], None],
    *,
    what: str,
    log: logging.Logger,
    built_in: Callable[[T], float] | None = None,
) -> T:
    """The structure loaded from the directory ``cache``, or built (and saved there when a
    cache is named; a read-only cache directory still serves the built structure); logged to
    ``log`` as ``what``."""
    started = time.perf_counter()
    if cache is not None:
        loaded = load(cache)
        if loaded is not None:
            took = time.perf_counter() - started
            if built_in is None:
                log.info("%s loaded from %s in %.2f s", what, cache, took)
            else:
                log.info(
                    "%s loaded from %s in %.2f s (built in %.2f s)",
                    what, cache, took, built_in(loaded),
                )  # fmt: skip
            return loaded
    built = build()
    if cache is not None:
        try:
            save(built, cache)
        except OSError as exc:
            log.warning("%s not saved to %s: %s", what, cache, exc)
        else:
            log.info("%s saved to %s", what, cache)
    return built
