"""Seeds of the randomised brute-force tests: the default run (``make test``) takes the first few,
``make test-slow`` the rest, so the default run stays within its time budget while every seed
still runs before an issue is resolved."""

from __future__ import annotations

from typing import Any

import pytest


def seeds(n: int, fast: int) -> list[Any]:
    """Seeds ``0 .. n-1`` for ``pytest.mark.parametrize``: the first ``fast`` run by default, the
    others are marked ``slow``."""
    return [*range(fast), *(pytest.param(s, marks=pytest.mark.slow) for s in range(fast, n))]
