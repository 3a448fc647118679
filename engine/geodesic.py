"""Great-circle distances."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["EARTH_RADIUS_M", "haversine_matrix_m"]

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), meters."""


def haversine_matrix_m(lat_deg: npt.ArrayLike, lng_deg: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Pairwise haversine distances in meters between points given in degrees."""
    lat = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lng = np.radians(np.asarray(lng_deg, dtype=np.float64))
    dlat = lat[None, :] - lat[:, None]
    dlng = lng[None, :] - lng[:, None]
    a = np.sin(dlat / 2) ** 2 + np.cos(lat)[:, None] * np.cos(lat)[None, :] * np.sin(dlng / 2) ** 2
    out: npt.NDArray[np.float64] = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    return out
