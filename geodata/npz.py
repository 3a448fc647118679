"""Arrays of an ``.npz`` file memory-mapped in place, so processes that load one file share it.

``np.load`` ignores ``mmap_mode`` for ``.npz`` archives and reads every array into private memory.
But ``np.savez`` stores its members uncompressed, each an ``.npy`` file at a known offset of the
archive, so :func:`load_npz` maps each such member straight from the archive file
(``np.memmap``, read-only): a road network written by the build cache
(:mod:`geodata.ingest.cache`) or by ``engine.roads.save_prebuilt`` then costs one copy in the page
cache however many processes (server, forkserver, solve workers) load it. Compressed members,
0-d arrays and empty arrays are read as ``np.load`` reads them. The archive's CRCs are not checked
for mapped members (their pages are read on demand); callers validate the arrays they get.
"""

from __future__ import annotations

import os
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_npz"]

_LOCAL_HEADER = struct.Struct("<4s22xHH")  # signature, ..., file name length, extra field length
_LOCAL_SIGNATURE = b"PK\x03\x04"


def load_npz(path: str | os.PathLike[str]) -> dict[str, np.ndarray[Any, Any]]:
    """Every array of the ``.npz`` file ``path`` by name; stored members memory-mapped read-only.

    Raises:
        OSError, ValueError, zipfile.BadZipFile: the file is unreadable or not an ``.npz``.
    """
    file = Path(path)
    out: dict[str, np.ndarray[Any, Any]] = {}
    with zipfile.ZipFile(file) as archive, file.open("rb") as raw:
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            mapped = None
            if info.compress_type == zipfile.ZIP_STORED:
                with archive.open(info) as member:
                    mapped = _map_member(file, raw, info, member)
            if mapped is None:
                with archive.open(info) as member:
                    mapped = np.lib.format.read_array(member, allow_pickle=False)
            out[name] = mapped
    return out


def _map_member(
    file: Path, raw: Any, info: zipfile.ZipInfo, member: Any
) -> np.ndarray[Any, Any] | None:
    """The member's array mapped from ``file``, or None when it is better read (0-d, empty,
    objects, an ``.npy`` format other than 1.0 / 2.0)."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        return None
    if dtype.hasobject or len(shape) == 0 or int(np.prod(shape)) == 0:
        return None
    header_len = member.tell()
    raw.seek(info.header_offset)
    signature, name_len, extra_len = _LOCAL_HEADER.unpack(raw.read(_LOCAL_HEADER.size))
    if signature != _LOCAL_SIGNATURE:
        raise zipfile.BadZipFile(f"{file}: bad local header for {info.filename}")
    offset = info.header_offset + _LOCAL_HEADER.size + name_len + extra_len + header_len
    return np.memmap(
        file, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C"
    )
