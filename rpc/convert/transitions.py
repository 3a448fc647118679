"""``ShipmentModel.transition_attributes`` (issue 15) → the engine's
:class:`~engine.model.TransitionAttributes`: :class:`TransitionsConverter`, the part of
:class:`~rpc.convert.model.ModelConverter` for them.

Field names, numbers and semantics are Google's. Conversion checks what the proto cannot say
(finite numbers, Durations, no hard ``distance_limit.max_meters``: Google's API supports only
soft limits here); the rules between fields (exactly one of ``src_tag`` / ``excluded_src_tag``,
non-negative costs, soft limit with its cost, bounds) are the engine's validation
(:mod:`engine.validation`, :mod:`engine.bounds`), whose paths are the same.
"""

from __future__ import annotations

from engine.model import TransitionAttributes
from rpc.convert.common import FieldConverter, each
from rpc.pb import route_optimization_service_pb2 as pb

__all__ = ["TransitionsConverter"]


class TransitionsConverter(FieldConverter):
    """Converts ``transition_attributes`` (paths ``model.transition_attributes[k]``)."""

    def transition_attributes(
        self, m: pb.ShipmentModel, path: str
    ) -> tuple[TransitionAttributes, ...]:
        return each(
            m.transition_attributes, f"{path}.transition_attributes", self._transition_attribute
        )

    def _transition_attribute(self, a: pb.TransitionAttributes, path: str) -> TransitionAttributes:
        limit = a.distance_limit
        lpath = f"{path}.distance_limit"
        if limit.HasField("max_meters"):
            self.add(
                f"{lpath}.max_meters",
                "transition distance limits are soft only (as in Google's API): give "
                "soft_max_meters and cost_per_kilometer_above_soft_max",
            )
        return TransitionAttributes(
            src_tag=a.src_tag,
            excluded_src_tag=a.excluded_src_tag,
            dst_tag=a.dst_tag,
            excluded_dst_tag=a.excluded_dst_tag,
            cost=self.number(a.cost, f"{path}.cost", 0.0),
            cost_per_kilometer=self.number(a.cost_per_kilometer, f"{path}.cost_per_kilometer", 0.0),
            distance_limit_soft_max_m=(
                float(limit.soft_max_meters) if limit.HasField("soft_max_meters") else None
            ),
            distance_limit_cost_per_kilometer_above_soft_max=self.opt_number(
                limit, "cost_per_kilometer_above_soft_max", lpath
            ),
            delay_s=self.duration(a.delay, f"{path}.delay") if a.HasField("delay") else 0.0,
        )
