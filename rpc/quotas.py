"""Per-tenant counts of synchronous solves: :class:`SolveSlots`.

Long-running operations are counted in the job store (:class:`rpc.operations.manager.JobManager`
checks ``active`` and ``stored``); synchronous solves (OptimizeTours, OptimizeToursStream) live
only as long as their call, so they are counted here, against the tenant's ``solves`` quota
(:class:`rpc.keys.TenantQuota`): a tenant cannot take every solver worker of a shared server.

:class:`TenantLimits` gives a tenant's request limits: the server's (``--limit``), lowered where
its quota sets a lower one (``routeopt keys quota --quota shipments=N``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Final

from rpc.errors import QuotaExceededError
from rpc.keys import TenantQuota
from rpc.limits import Limits

__all__ = ["SOLVES_RETRY_AFTER_S", "SolveSlots", "TenantLimits"]

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


class TenantLimits:
    """A tenant's request limits: ``server``'s, lowered by its quota's (``quotas`` gives a
    tenant's quota; it is read at every call, so a new quota applies at the next call). The
    limits made from a quota are kept (a few hundred at most), so a call only reads the
    quota."""

    _KEPT: Final = 256

    def __init__(self, server: Limits, quotas: Callable[[str], TenantQuota]) -> None:
        self.server = server
        self._quotas = quotas
        self._lock = threading.Lock()
        self._made: dict[tuple[str, tuple[tuple[str, float], ...]], Limits] = {}

    def __call__(self, tenant: str) -> Limits:
        own = self._quotas(tenant).limits
        if not own:
            return self.server
        key = (tenant, own)
        with self._lock:
            limits = self._made.get(key)
        if limits is None:
            limits = self.server.for_tenant(tenant, dict(own))
            with self._lock:
                if len(self._made) >= self._KEPT:
                    self._made.clear()
                self._made[key] = limits
        return limits
