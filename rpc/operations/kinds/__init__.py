"""The kinds of long-running operations, one module each (see :mod:`.base`): ``tours``
(:mod:`.solve`), ``batch`` (:mod:`.batch`), ``layouts`` (:mod:`.layouts`) and ``uri``
(:mod:`.uri`)."""

from rpc.operations.kinds.base import Host, OperationKind, OperationSettings, Running
from rpc.operations.kinds.batch import BatchKind
from rpc.operations.kinds.layouts import LayoutsKind
from rpc.operations.kinds.solve import SolveKind
from rpc.operations.kinds.uri import UriKind

__all__ = [
    "BatchKind",
    "Host",
    "LayoutsKind",
    "OperationKind",
    "OperationSettings",
    "Running",
    "SolveKind",
    "UriKind",
]
