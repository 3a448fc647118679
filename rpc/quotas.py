"""Per-tenant counts of synchronous solves: :class:`SolveSlots`.

Long-running operations are counted in the job store (:class:`rpc.operations.manager.JobManager`
checks ``active`` and ``stored``); synchronous solves (OptimizeTours, OptimizeToursStream) live
only as long as their call, so they are counted here, against the tenant's ``solves`` quota
(:class:`rpc.keys.TenantQuota`): a tenant cannot take every solver worker of a shared server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from rpc.errors import QuotaExceededError
from rpc.keys import TenantQuota

__all__ = ["SOLVES_RETRY_AFTER_S", "SolveSlots"]

SOLVES_RETRY_AFTER_S: Final = 1.0
"""``RetryInfo`` delay when a tenant has as many synchronous solves as its quota."""


class SolveSlots:
    """How many synchronous solves each tenant has running or waiting; ``quotas`` gives a
    tenant's quota."""

    def __init__(self, quotas: Callable[[str], TenantQuota]) -> None:
        self._quotas = quotas
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def count(self, tenant: str) -> int:
        with self._lock:
            return self._counts.get(tenant, 0)

    def acquire(self, tenant: str) -> Callable[[], None]:
        """Take a slot of ``tenant`` (:class:`~rpc.errors.QuotaExceededError` when its quota is
        used up); returns the function that gives it back (once, whatever the calls)."""
        limit = self._quotas(tenant).max_solves
        with self._lock:
            held = self._counts.get(tenant, 0)
            if limit is not None and held >= limit:
                raise QuotaExceededError(
                    f"tenant quota: {held} synchronous solves are running or waiting (at most "
                    f"{limit}); retry when one ends, or submit a long-running operation",
                    tenant=tenant,
                    limit="solves",
                    quota=limit,
                    retry_after_s=SOLVES_RETRY_AFTER_S,
                )
            self._counts[tenant] = held + 1
        released = threading.Event()

        def release() -> None:
            with self._lock:
                if released.is_set():
                    return
                released.set()
                left = self._counts[tenant] - 1
                if left:
                    self._counts[tenant] = left
                else:
                    del self._counts[tenant]

        return release
