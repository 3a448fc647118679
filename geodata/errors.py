"""Errors raised by ``geodata``; each subclasses a built-in so existing handlers still catch it."""

from __future__ import annotations

__all__ = [
    "EmptyNetworkError",
    "RoadDataNotFoundError",
    "RoadNetworkError",
    "UnsupportedFormatError",
]


class RoadNetworkError(ValueError):
    """Road data that cannot be turned into a road network (bad file, bad values, nothing left)."""


class RoadDataNotFoundError(RoadNetworkError, FileNotFoundError):
    """The road data file does not exist (also a ``FileNotFoundError``)."""


class UnsupportedFormatError(RoadNetworkError):
    """The file's format is not one that ``geodata`` reads (judged by its suffix)."""


class EmptyNetworkError(RoadNetworkError):
    """No drivable road is left after filtering by the profile."""
