"""Reading OSM way tags: speed limits, one-way rules and access, for one profile.

Rules (OSM wiki conventions, as OSRM's car profile reads them):

- One-way: ``oneway=yes|true|1`` forward only, ``oneway=-1|reverse`` backward only,
  ``oneway=no|false|0`` both ways (it overrides implied one-ways). ``junction=roundabout|circular``
  and ``highway=motorway`` imply ``oneway=yes``. ``highway=motorway_link`` does not: the wiki does
  not make it implied (OSRM neither), and links are nearly always tagged explicitly.
  ``oneway=reversible`` (direction changes with the time of day) is not drivable;
  ``oneway=alternating`` (one lane, both directions in turn) is two-way.
- ``maxspeed``: a number is km/h (``"50"``, ``"50 km/h"``, ``"50.5"``); ``"30 mph"`` and
  ``"10 knots"`` are converted; ``"walk"`` is 6 km/h; zone codes such as ``"DE:urban"``,
  ``"FR:rural"``, ``"GB:nsl_single"``, ``"DE:zone:30"`` / ``"DE:zone30"`` come from a table of
  national defaults (:data:`ZONE_SPEEDS_KPH`), then a generic one by zone kind (``urban`` 50,
  ``rural`` 90, ...);
  several values ``"50;30"`` take the minimum. ``"none"`` (no limit), ``"signals"``, ``"variable"``
  and anything unparsed fall back to the profile's default speed for the road class. The result
  is capped at the profile's ``max_speed_kph``.
- Access: the most specific of the profile's ``access_keys`` present on the way decides.
- Ferries: a ``route=ferry`` way without ``highway`` is of class ``ferry`` (for vehicles only with
  explicit access, see :mod:`geodata.ingest.profiles`).
- Edge flags for route modifiers (:func:`edge_flags`): ``toll=yes``, ``route=ferry``, ``indoor``.
- A profile with ``oneway=False`` (walking) uses every way in both directions: no one-way rule is
  read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from geodata.ingest.profiles import Profile, highway_code
from geodata.network import EDGE_FERRY, EDGE_INDOOR, EDGE_TOLL

__all__ = [
    "GENERIC_ZONE_SPEEDS_KPH",
    "WALK_SPEED_KPH",
    "ZONE_SPEEDS_KPH",
    "WayRule",
    "evaluate_way",
    "parse_maxspeed",
    "parse_oneway",
]

MPH_KPH = 1.609344
KNOT_KPH = 1.852
WALK_SPEED_KPH = 6.0
"""Speed for ``maxspeed=walk`` (walking pace)."""

GENERIC_ZONE_SPEEDS_KPH: Mapping[str, float] = {
    "urban": 50.0,
    "rural": 90.0,
    "trunk": 100.0,
    "motorway": 120.0,
    "living_street": 10.0,
    "walk": WALK_SPEED_KPH,
    "school": 30.0,
    "bicycle_road": 30.0,
}
"""Speed of a zone kind (``XX:kind``) when the country has no entry in :data:`ZONE_SPEEDS_KPH`."""

# National defaults from the OSM wiki page "Default speed limits" (km/h, lower-case keys).
# "none" (German motorways) is absent on purpose: it falls back to the class default.
ZONE_SPEEDS_KPH: Mapping[str, float] = {
    "at:urban": 50, "at:rural": 100, "at:trunk": 100, "at:motorway": 130,
    "be:urban": 50, "be:rural": 90, "be-vlg:rural": 70, "be-wal:rural": 90, "be:motorway": 120,
    "br:urban": 60, "br:rural": 80,
    "ch:urban": 50, "ch:rural": 80, "ch:trunk": 100, "ch:motorway": 120,
    "cz:urban": 50, "cz:rural": 90, "cz:trunk": 110, "cz:motorway": 130,
    "de:urban": 50, "de:rural": 100, "de:living_street": 7, "de:bicycle_road": 30,
    "dk:urban": 50, "dk:rural": 80, "dk:motorway": 130,
    "es:urban": 50, "es:rural": 90, "es:trunk": 100, "es:motorway": 120,
    "fi:urban": 50, "fi:rural": 80, "fi:motorway": 120,
    "fr:urban": 50, "fr:rural": 80, "fr:trunk": 110, "fr:motorway": 130, "fr:walk": 20,
    "gb:nsl_single": 60 * MPH_KPH, "gb:nsl_dual": 70 * MPH_KPH, "gb:motorway": 70 * MPH_KPH,
    "uk:nsl_single": 60 * MPH_KPH, "uk:nsl_dual": 70 * MPH_KPH, "uk:motorway": 70 * MPH_KPH,
    "hu:urban": 50, "hu:rural": 90, "hu:trunk": 110, "hu:motorway": 130,
    "it:urban": 50, "it:rural": 90, "it:trunk": 110, "it:motorway": 130,
    "nl:urban": 50, "nl:rural": 80, "nl:trunk": 100, "nl:motorway": 130,
    "no:urban": 50, "no:rural": 80, "no:motorway": 110,
    "pl:urban": 50, "pl:rural": 90, "pl:trunk": 100, "pl:motorway": 140,
    "pt:urban": 50, "pt:rural": 90, "pt:trunk": 100, "pt:motorway": 120,
    "ro:urban": 50, "ro:rural": 90, "ro:trunk": 100, "ro:motorway": 130,
    "ru:urban": 60, "ru:rural": 90, "ru:living_street": 20, "ru:motorway": 110,
    "se:urban": 50, "se:rural": 70, "se:motorway": 110,
    "sk:urban": 50, "sk:rural": 90, "sk:motorway": 130,
}  # fmt: skip
"""National default limits for zone codes such as ``DE:urban`` (keys lower-case)."""

_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph|knots)?\s*$")
_ZONE_NUMBER = re.compile(r"^[a-z]{2}(?:-[a-z]+)?:zone:?(\d+)$")

_ONEWAY_FORWARD = frozenset({"yes", "true", "1"})
_ONEWAY_BACKWARD = frozenset({"-1", "reverse"})
_ONEWAY_BOTH = frozenset({"no", "false", "0", "alternating"})
_IMPLIED_ONEWAY_JUNCTIONS = frozenset({"roundabout", "circular"})


def _parse_one_maxspeed(value: str) -> float | None:
    text = value.strip().lower()
    if not text:
        return None
    m = _NUMBER_UNIT.match(text)
    if m:
        number = float(m.group(1))
        unit = m.group(2)
        if unit == "mph":
            number *= MPH_KPH
        elif unit == "knots":
            number *= KNOT_KPH
        return number if number > 0 else None
    if text == "walk":
        return WALK_SPEED_KPH
    if text in ZONE_SPEEDS_KPH:
        return float(ZONE_SPEEDS_KPH[text])
    m = _ZONE_NUMBER.match(text)
    if m:
        number = float(m.group(1))
        return number if number > 0 else None
    if ":" in text:
        kind = text.split(":", 1)[1]
        if kind in GENERIC_ZONE_SPEEDS_KPH:
            return GENERIC_ZONE_SPEEDS_KPH[kind]
    return None  # "none", "signals", "variable", typos: the caller uses the class default


def parse_maxspeed(value: str | None) -> float | None:
    """Speed in km/h from an OSM ``maxspeed`` value, or ``None`` when it gives no usable number.

    >>> parse_maxspeed("50"), parse_maxspeed("DE:rural"), parse_maxspeed("50;30")
    (50.0, 100.0, 30.0)
    >>> round(parse_maxspeed("30 mph"), 3), parse_maxspeed("none")
    (48.28, None)
    """
    if value is None:
        return None
    speeds = [s for part in value.split(";") if (s := _parse_one_maxspeed(part)) is not None]
    return min(speeds) if speeds else None


def parse_oneway(tags: Mapping[str, str]) -> tuple[bool, bool] | None:
    """``(forward, backward)`` travel allowed along the way's drawing direction.

    ``None`` means the way cannot be used by direction rules (``oneway=reversible``).
    """
    oneway = tags.get("oneway", "").strip().lower()
    if oneway in _ONEWAY_FORWARD:
        return True, False
    if oneway in _ONEWAY_BACKWARD:
        return False, True
    if oneway in _ONEWAY_BOTH:
        return True, True
    if oneway == "reversible":
        return None
    implied = (
        tags.get("junction", "").strip().lower() in _IMPLIED_ONEWAY_JUNCTIONS
        or tags.get("highway", "").strip() == "motorway"
    )
    return (True, False) if implied else (True, True)


def is_accessible(tags: Mapping[str, str], profile: Profile) -> bool:
    """Whether the profile's vehicle may use the way (the most specific access tag decides)."""
    for key in profile.access_keys:
        value = tags.get(key)
        if value is not None:
            return value.strip().lower() not in profile.denied_access
    return True


def _speed_kph(tags: Mapping[str, str], profile: Profile, highway: str, direction: str) -> float:
    for key in profile.maxspeed_keys:
        for tag in (f"{key}:{direction}", key):
            speed = parse_maxspeed(tags.get(tag))
            if speed is not None:
                return min(speed, profile.max_speed_kph)
    return profile.default_speed_kph(highway)


@dataclass(frozen=True, slots=True)
class WayRule:
    """How the profile may use one way: directions, speeds (km/h), road class code and
    :mod:`geodata.network` edge flags (toll, ferry, indoor)."""

    forward: bool
    backward: bool
    speed_forward_kph: float
    speed_backward_kph: float
    highway: int
    flags: int = 0


_OPEN_FERRY = frozenset({"yes", "designated"})
_NOT_INDOOR = frozenset({"no", ""})


def road_class(tags: Mapping[str, str]) -> str | None:
    """The way's class: its ``highway`` value, ``ferry`` for a ``route=ferry`` way without one."""
    highway = tags.get("highway")
    if highway is None and tags.get("route") == "ferry":
        return "ferry"
    return highway


def edge_flags(tags: Mapping[str, str], profile: Profile) -> int:
    """The :mod:`geodata.network` flags of a way: ``toll=yes`` (and ``toll:hgv=yes`` for a
    profile reading ``hgv`` access) is a toll road; ``route=ferry`` a ferry; ``indoor=*`` (not
    ``no``) or ``highway=corridor`` indoors."""
    flags = 0
    tolls = [tags.get("toll", "")]
    if "hgv" in profile.access_keys:
        tolls.append(tags.get("toll:hgv", ""))
    if any(t.strip().lower() == "yes" for t in tolls):
        flags |= EDGE_TOLL
    if tags.get("route") == "ferry":
        flags |= EDGE_FERRY
    indoor = tags.get("indoor", "").strip().lower()
    if indoor not in _NOT_INDOOR or tags.get("highway") == "corridor":
        flags |= EDGE_INDOOR
    return flags


def evaluate_way(tags: Mapping[str, str], profile: Profile) -> WayRule | None:
    """The profile's rule for a way with these tags, or ``None`` when it may not be driven."""
    highway = road_class(tags)
    if highway is None or highway not in profile.speeds_kph:
        return None
    if highway == "ferry" and profile.explicit_ferry_access and not _ferry_open(tags, profile):
        return None
    if tags.get("area") == "yes" or tags.get("impassable") == "yes":
        return None
    if tags.get("service") in profile.excluded_service:
        return None
    if not is_accessible(tags, profile):
        return None
    directions = parse_oneway(tags) if profile.oneway else (True, True)
    if directions is None:
        return None
    forward, backward = directions
    fwd = _speed_kph(tags, profile, highway, "forward") if forward else math.nan
    bwd = _speed_kph(tags, profile, highway, "backward") if backward else math.nan
    return WayRule(forward, backward, fwd, bwd, highway_code(highway), edge_flags(tags, profile))


def _ferry_open(tags: Mapping[str, str], profile: Profile) -> bool:
    for key in profile.access_keys:
        value = tags.get(key)
        if value is not None:
            return value.strip().lower() in _OPEN_FERRY
    return False
