"""Errors raised by ``geodata``; each subclasses a built-in so existing handlers still catch it."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "EmptyNetworkError",
    "MatrixInputError",
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


class MatrixInputError(ValueError):
    """Arrays given to a matrix function violate its contract; the message lists every problem.

    Also importable from :mod:`geodata.matrix`, where it was defined first.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid matrix input: " + "; ".join(self.problems))
