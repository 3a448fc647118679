"""Vehicle profiles: which roads a vehicle may use and how fast it drives on them.

A profile is a frozen dataclass. ``speeds_kph`` both lists the drivable ``highway`` classes and
gives each one's default speed (used when a way has no usable ``maxspeed``); a class missing from
it is not drivable. Every speed is capped at ``max_speed_kph``.

Decisions (see also :mod:`geodata.ingest.tags`):

- ``service`` roads are drivable at a low default speed: deliveries need them to reach loading bays,
  yards and car parks. ``service=emergency_access`` is excluded.
- ``track`` is *not* drivable by default (mostly unpaved farm and forest tracks); a custom profile
  can add it to ``speeds_kph``.
- Ferries (``route=ferry`` ways, class ``ferry``) carry cars and trucks only where their access
  tags say so (``motor_vehicle=yes``, ``motorcar=yes``, ``hgv=yes``...: ``explicit_ferry_access``),
  at 10 km/h (the crossing; waiting is not modelled, ``duration=*`` is not read).
- Access is decided by the most specific of ``access_keys`` that the way carries (OSM's rule: a more
  specific tag overrides a general one, so ``access=no`` + ``motor_vehicle=yes`` is open to cars).
  ``destination``, ``delivery``, ``customers`` and ``permissive`` stay open: a delivery vehicle
  may use them. ``private`` is closed.
- :data:`FOOT` (walking) reads no one-way rule at all (``Profile.oneway`` false): every way it may
  use is walkable in both directions, whatever ``oneway``/``junction`` say (``oneway:foot`` is
  not read either). Its rules are in its docstring.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "CAR",
    "FOOT",
    "HIGHWAY_CLASSES",
    "PROFILES",
    "TRUCK",
    "WALKING_SPEED_KPH",
    "Profile",
    "highway_code",
]

HIGHWAY_CLASSES: tuple[str, ...] = (
    "motorway",
    "motorway_link",
    "trunk",
    "trunk_link",
    "primary",
    "primary_link",
    "secondary",
    "secondary_link",
    "tertiary",
    "tertiary_link",
    "unclassified",
    "residential",
    "living_street",
    "service",
    "road",
    "track",
    # Ways for people on foot (the FOOT profile); appended, so earlier codes keep their value.
    "pedestrian",
    "footway",
    "path",
    "steps",
    "cycleway",
    "bridleway",
    "corridor",
    # Ferry crossings: ways tagged route=ferry (no highway tag), read as this class.
    "ferry",
)
"""Road classes a profile may allow; an edge's ``highway`` code is its index in this tuple."""

_HIGHWAY_CODES = {name: code for code, name in enumerate(HIGHWAY_CLASSES)}

DEFAULT_DENIED_ACCESS = frozenset(
    {
        "no",
        "private",
        "agricultural",
        "forestry",
        "emergency",
        "military",
        "psv",
        "bus",
        "discouraged",
    }
)
"""Access values that close a road to the profile's vehicle."""


def highway_code(name: str) -> int:
    """Code of a ``highway`` class (its index in :data:`HIGHWAY_CLASSES`); KeyError if unknown."""
    return _HIGHWAY_CODES[name]


@dataclass(frozen=True)
class Profile:
    """How one kind of vehicle uses the road network.

    Attributes:
        name: short name, used in cache file names and logs (letters, digits, ``-``, ``_``).
        speeds_kph: default speed (km/h) of each drivable ``highway`` class; other classes are not
            drivable.
        max_speed_kph: cap on every speed, from ``maxspeed`` or defaults (a truck's limiter).
        access_keys: access tags to read, most specific first; the first one present decides.
        denied_access: values of those tags that close the road.
        maxspeed_keys: speed-limit tags to read, most specific first (``maxspeed:hgv`` for trucks);
            ``KEY:forward`` / ``KEY:backward`` are read before ``KEY`` for each direction.
        excluded_service: ``service=*`` values that are not drivable.
        oneway: whether one-way tags restrict the profile (``False`` for walking: every usable
            way is usable in both directions).
        explicit_ferry_access: a ferry (``route=ferry``, class ``ferry``) is used only when the
            most specific of ``access_keys`` it carries says ``yes`` or ``designated`` (OSM
            ferries that take cars say ``motor_vehicle=yes``; many carry people only).
    """

    name: str
    speeds_kph: Mapping[str, float]
    max_speed_kph: float
    access_keys: tuple[str, ...]
    denied_access: frozenset[str] = DEFAULT_DENIED_ACCESS
    maxspeed_keys: tuple[str, ...] = ("maxspeed",)
    excluded_service: frozenset[str] = field(
        default_factory=lambda: frozenset({"emergency_access"})
    )
    oneway: bool = True
    explicit_ferry_access: bool = False

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not self.name or not all(c.isalnum() or c in "-_" for c in self.name):
            problems.append(f"name {self.name!r} must be non-empty letters, digits, '-' or '_'")
        if not self.speeds_kph:
            problems.append("speeds_kph must allow at least one highway class")
        for cls, speed in self.speeds_kph.items():
            if cls not in _HIGHWAY_CODES:
                problems.append(f"speeds_kph: unknown highway class {cls!r} (see HIGHWAY_CLASSES)")
            if not (isinstance(speed, int | float) and math.isfinite(speed) and speed > 0):
                problems.append(f"speeds_kph[{cls!r}] must be a positive number, got {speed!r}")
        if not (math.isfinite(self.max_speed_kph) and self.max_speed_kph > 0):
            problems.append(f"max_speed_kph must be positive, got {self.max_speed_kph!r}")
        if not self.access_keys:
            problems.append("access_keys must name at least one tag (e.g. 'access')")
        if not self.maxspeed_keys:
            problems.append("maxspeed_keys must name at least one tag (e.g. 'maxspeed')")
        if problems:
            raise ValueError(f"invalid profile {self.name!r}: " + "; ".join(problems))
        # Freeze the mapping so the profile really is immutable (and a safe cache key).
        object.__setattr__(self, "speeds_kph", MappingProxyType(dict(self.speeds_kph)))
        object.__setattr__(self, "access_keys", tuple(self.access_keys))
        object.__setattr__(self, "maxspeed_keys", tuple(self.maxspeed_keys))
        object.__setattr__(self, "denied_access", frozenset(self.denied_access))
        object.__setattr__(self, "excluded_service", frozenset(self.excluded_service))

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def default_speed_kph(self, highway: str) -> float:
        """The speed on ``highway`` when no ``maxspeed`` applies, capped at ``max_speed_kph``."""
        return min(float(self.speeds_kph[highway]), self.max_speed_kph)

    def fingerprint(self) -> str:
        """A canonical JSON text of every setting: two profiles build the same network iff equal."""
        return json.dumps(
            {
                "name": self.name,
                "speeds_kph": sorted((k, float(v)) for k, v in self.speeds_kph.items()),
                "max_speed_kph": float(self.max_speed_kph),
                "access_keys": list(self.access_keys),
                "denied_access": sorted(self.denied_access),
                "maxspeed_keys": list(self.maxspeed_keys),
                "excluded_service": sorted(self.excluded_service),
                "oneway": self.oneway,
                "explicit_ferry_access": self.explicit_ferry_access,
            },
            sort_keys=True,
        )


_DEFAULT_SPEEDS_KPH: dict[str, tuple[float, float]] = {
    # highway class: (car, truck) default speed in km/h
    "motorway": (110.0, 80.0),
    "motorway_link": (60.0, 50.0),
    "trunk": (90.0, 70.0),
    "trunk_link": (50.0, 40.0),
    "primary": (65.0, 55.0),
    "primary_link": (40.0, 35.0),
    "secondary": (55.0, 50.0),
    "secondary_link": (35.0, 30.0),
    "tertiary": (45.0, 40.0),
    "tertiary_link": (30.0, 25.0),
    "unclassified": (35.0, 30.0),
    "residential": (30.0, 25.0),
    "living_street": (10.0, 10.0),
    "service": (15.0, 10.0),
    "road": (30.0, 25.0),
    "ferry": (10.0, 10.0),  # the crossing only (no waiting time; a duration=* tag is not read)
}

CAR = Profile(
    name="car",
    speeds_kph={cls: car for cls, (car, _) in _DEFAULT_SPEEDS_KPH.items()},
    max_speed_kph=130.0,
    access_keys=("motorcar", "motor_vehicle", "vehicle", "access"),
    explicit_ferry_access=True,
)
"""A car or small van: default speeds a little under typical limits, capped at 130 km/h."""

TRUCK = Profile(
    name="truck",
    speeds_kph={cls: truck for cls, (_, truck) in _DEFAULT_SPEEDS_KPH.items()},
    max_speed_kph=80.0,
    access_keys=("hgv", "motor_vehicle", "vehicle", "access"),
    maxspeed_keys=("maxspeed:hgv", "maxspeed"),
    explicit_ferry_access=True,
)
"""A heavy goods vehicle (OSM ``hgv``): lower speeds, 80 km/h limiter, closed where ``hgv=no``."""

WALKING_SPEED_KPH = 5.0
"""The FOOT profile's walking speed (km/h), the same on every way it may use."""

FOOT = Profile(
    name="foot",
    # every class but motorways (and their links), at walking pace
    speeds_kph=dict.fromkeys(
        (c for c in HIGHWAY_CLASSES if c not in ("motorway", "motorway_link")),
        WALKING_SPEED_KPH,
    ),
    max_speed_kph=WALKING_SPEED_KPH,
    access_keys=("foot", "access"),
    excluded_service=frozenset(),
    oneway=False,
)
"""Walking (Google's ``TravelMode.WALKING``). Rules:

- Ways: every road class but ``motorway`` and ``motorway_link`` (``trunk`` included, as in OSRM's
  foot profile: pedestrians may use it unless it is tagged ``foot=no``), plus the ways for
  people on foot: ``pedestrian``, ``footway``, ``path``, ``steps``, ``cycleway``, ``bridleway``,
  ``track`` and ``corridor`` (indoor corridors); every ``service`` road; ferries
  (``route=ferry``) unless ``foot=no``.
- Access: ``foot`` then ``access`` (``access=no`` + ``foot=yes`` is open; ``foot=no`` closes).
- Direction: both ways on every way, whatever ``oneway``, ``oneway=reversible`` or
  ``junction=roundabout`` say (they are rules for vehicles).
- Speed: :data:`WALKING_SPEED_KPH` (5 km/h) everywhere, ``maxspeed`` is irrelevant (it is the
  cap, so every road-speed tag is capped at walking pace).
- ``area=yes`` and ``impassable=yes`` ways are excluded as for vehicles.
"""

PROFILES: Mapping[str, Profile] = MappingProxyType({p.name: p for p in (CAR, TRUCK, FOOT)})
"""The built-in profiles by name."""
