"""Address geocoding: an offline gazetteer geocoder (a geopy Geocoder), a Nominatim factory and `locate`."""

from __future__ import annotations

import csv
import logging
import math
import re
import unicodedata
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from geopy.exc import GeopyError
from geopy.geocoders import Nominatim
from geopy.geocoders.base import DEFAULT_SENTINEL, Geocoder
from geopy.location import Location
from geopy.point import Point

from geo.points import haversine_km, validate_lat_lng

logger = logging.getLogger(__name__)

GAZETTEER_PATH = Path(__file__).with_name("data") / "gazetteer.csv"
USER_AGENT = "gridcrew"

# Sites whose loss of supply raises a ticket to CRITICAL (domain.md). The names follow OSM tags where OSM has
# one (amenity=hospital, man_made=water_works, amenity=nursing_home), so Nominatim results classify the same.
CRITICAL_SITE_KINDS: frozenset[str] = frozenset(
    {"hospital", "water_works", "traffic_control", "nursing_home"}
)


def critical_site_kinds() -> frozenset[str]:
    """Place kinds intake treats as critical sites: hospital, water works, traffic control, nursing home."""
    return CRITICAL_SITE_KINDS


def is_critical_site(kind: str | None) -> bool:
    """Whether a place kind (gazetteer kind or Nominatim type) is a critical site."""
    return bool(kind) and kind in CRITICAL_SITE_KINDS


@dataclass(frozen=True)
class Place:
    """One gazetteer row."""

    name_en: str
    name_zh: str
    kind: str
    lat: float
    lng: float
    aliases: tuple[str, ...] = ()

    @property
    def critical(self) -> bool:
        return is_critical_site(self.kind)

    @property
    def display_name(self) -> str:
        return f"{self.name_zh} ({self.name_en})"


@dataclass(frozen=True)
class GeocodeResult:
    """What `locate` returns: a point plus what was matched, for intake and the ticket's location fields."""

    lat: float
    lng: float
    name: str
    kind: str | None
    display_name: str
    source: str  # "gazetteer" or the geocoder class name, e.g. "Nominatim"
    critical: bool = False


# ---------------------------------------------------------------- gazetteer file


def load_gazetteer(path: str | Path | None = None) -> tuple[Place, ...]:
    """Read and validate a gazetteer CSV (name_en,name_zh,kind,lat,lng,aliases; aliases separated by '|')."""
    return _load_gazetteer(str(Path(path) if path is not None else GAZETTEER_PATH))


@lru_cache(maxsize=8)
def _load_gazetteer(path: str) -> tuple[Place, ...]:
    required = ["name_en", "name_zh", "kind", "lat", "lng", "aliases"]
    places: list[Place] = []
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}")
        for line, row in enumerate(reader, start=2):
            try:
                lat, lng = float(row["lat"]), float(row["lng"])
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line}: lat/lng are not numbers") from exc
            problems = validate_lat_lng(lat, lng)
            if problems or not row["kind"] or not (row["name_en"] or row["name_zh"]):
                raise ValueError(f"{path}:{line}: bad row ({'; '.join(problems) or 'name or kind empty'})")
            aliases = tuple(a.strip() for a in (row["aliases"] or "").split("|") if a.strip())
            places.append(
                Place(row["name_en"].strip(), row["name_zh"].strip(), row["kind"].strip(), lat, lng, aliases)
            )
    return tuple(places)


# ---------------------------------------------------------------- normalisation

_CJK = re.compile(r"[\u3400-\u9fff]")
# house number and the building/unit/room parts after it: "88号", "3栋2单元501室", "12-3号"
_CJK_NUMBER = re.compile(r"\d+(?:[-－]\d+)*\s*(?:号院|号楼|号|栋|幢|单元|室|层|楼|弄|巷|排|组)?")
_EN_NUMBER = re.compile(r"(?:\b(?:no|number|nr)\b\s*\.?\s*|#\s*)?\d+[a-z]?\b")
_ABBREVIATIONS = {
    "rd": "road",
    "st": "street",
    "str": "street",
    "ave": "avenue",
    "av": "avenue",
    "hwy": "highway",
    "blvd": "boulevard",
    "ctr": "centre",
    "center": "centre",
    "vil": "village",
    "twp": "township",
}


def _base(text: str) -> str:
    # NFKC folds full-width letters, digits and punctuation (ＡＢ１２，) to their half-width forms
    text = unicodedata.normalize("NFKC", text).lower()
    return text.replace("'", "").replace("\u2019", "")


def compact_form(text: str) -> str:
    """Form for Chinese names: half-width, lower case, without house numbers, punctuation or spaces."""
    text = _CJK_NUMBER.sub("", _base(text))
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def word_form(text: str) -> str:
    """Form for English names: single-spaced words, numbers dropped, abbreviations (Rd, St) expanded."""
    text = _base(text)
    text = "".join(ch if unicodedata.category(ch)[0] in "LN" else " " for ch in text)
    text = _EN_NUMBER.sub(" ", text)
    return " ".join(_ABBREVIATIONS.get(w, w) for w in text.split())


def house_number(text: str) -> int | None:
    """The house number of an address ("中山路88号", "No. 88 Zhongshan Rd", "88 Zhongshan Road"), if any."""
    text = _base(text)
    m = re.search(r"(\d+)\s*号", text) or re.search(r"(?:\bno\b\s*\.?|#)\s*(\d+)", text)
    m = m or re.match(r"\s*(\d+)\s+[a-z]", text)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- geocoder

# A match in a district or township name only says "somewhere in that town": any street, village or
# landmark also found in the address is more precise, so the tiers rank before length.
_KIND_TIER = {"district": 0, "township": 1}


@dataclass(frozen=True)
class _Key:
    text: str
    cjk: bool
    place: Place

    @property
    def score(self) -> tuple[int, int]:
        # one Chinese character carries about as much as three Latin letters
        return (_KIND_TIER.get(self.place.kind, 2), len(self.text) * (3 if self.cjk else 1))


class GazetteerGeocoder(Geocoder):
    """Offline geocoder over the gazetteer CSV: the longest place name/alias (zh or en) in the address."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        places: tuple[Place, ...] | list[Place] | None = None,
        street_offsets: bool = True,
    ) -> None:
        super().__init__(user_agent=USER_AGENT)
        self.places: tuple[Place, ...] = tuple(places) if places is not None else load_gazetteer(path)
        self.street_offsets = street_offsets
        keys: dict[tuple[str, bool], _Key] = {}
        for place in self.places:
            for name in (place.name_zh, place.name_en, *place.aliases):
                cjk = bool(_CJK.search(name))
                text = compact_form(name) if cjk else word_form(name)
                # ignore keys too short to mean anything ("a", one character)
                if len(text) >= (2 if cjk else 3):
                    keys.setdefault((text, cjk), _Key(text, cjk, place))
        self._keys = sorted(keys.values(), key=lambda k: k.score, reverse=True)
        self._lats = np.array([p.lat for p in self.places])
        self._lngs = np.array([p.lng for p in self.places])

    def matches(self, query: str) -> list[tuple[Place, str]]:
        """All places whose name or alias occurs in the address, best first, with the matched text."""
        compact = compact_form(query)
        words = f" {word_form(query)} "
        seen: set[int] = set()
        found: list[tuple[Place, str]] = []
        for key in self._keys:
            hit = key.text in compact if key.cjk else f" {key.text} " in words
            if hit and id(key.place) not in seen:
                seen.add(id(key.place))
                found.append((key.place, key.text))
        return found

    def _location(self, place: Place, matched: str, query: str) -> Location:
        lat, lng = place.lat, place.lng
        number = house_number(query)
        address = place.display_name
        if number is not None and place.kind == "street":
            address = f"{place.name_zh}{number}号 ({number} {place.name_en})"
            if self.street_offsets:
                lat, lng = _along_street(place, number)
        raw = {
            "name_en": place.name_en,
            "name_zh": place.name_zh,
            "kind": place.kind,
            "critical": place.critical,
            "matched": matched,
            "house_number": number,
            "lat": lat,
            "lng": lng,
            "source": "gazetteer",
        }
        return Location(address, (lat, lng, 0.0), raw)

    def geocode(
        self, query: str | dict[str, str], *, exactly_one: bool = True, timeout: Any = DEFAULT_SENTINEL
    ) -> Location | list[Location] | None:
        """Geocode an address; `timeout` is accepted for geopy compatibility (no I/O happens)."""
        if isinstance(query, dict):  # geopy's structured-query form: join the parts
            query = " ".join(str(v) for v in query.values())
        if not isinstance(query, str) or not query.strip():
            return None
        found = self.matches(query)
        if not found:
            return None
        if exactly_one:
            return self._location(*found[0], query)
        return [self._location(place, matched, query) for place, matched in found]

    def reverse(
        self,
        query: Any,
        *,
        exactly_one: bool = True,
        timeout: Any = DEFAULT_SENTINEL,
        max_km: float | None = None,
    ) -> Location | list[Location] | None:
        """Nearest gazetteer place(s) to a point ("lat, lng", (lat, lng) or geopy Point)."""
        point = query if isinstance(query, Point) else Point(query)
        dist = haversine_km(point.latitude, point.longitude, self._lats, self._lngs)
        order = np.argsort(dist, kind="stable")
        if max_km is not None:
            order = order[dist[order] <= max_km]
        if len(order) == 0:
            return None
        picked = order[:1] if exactly_one else order[:10]
        out = []
        for i in picked:
            p = self.places[int(i)]
            raw = {"name_en": p.name_en, "name_zh": p.name_zh, "kind": p.kind, "distance_km": float(dist[i])}
            out.append(Location(p.display_name, (p.lat, p.lng, 0.0), raw))
        return out[0] if exactly_one else out


def _along_street(place: Place, number: int) -> tuple[float, float]:
    """Deterministic point along a street: ~3 m per house number in a bearing fixed by the street's name."""
    bearing = (zlib.crc32(place.name_zh.encode("utf-8")) % 360) * math.pi / 180
    km = min(number, 300) * 0.003  # cap keeps any address within ~1 km of the gazetteer point
    dlat = km * math.cos(bearing) / 111.2
    dlng = km * math.sin(bearing) / (111.2 * math.cos(math.radians(place.lat)))
    return round(place.lat + dlat, 6), round(place.lng + dlng, 6)


@lru_cache(maxsize=1)
def default_gazetteer_geocoder() -> GazetteerGeocoder:
    """The shipped demo gazetteer, built once per process."""
    return GazetteerGeocoder()


def nearest_place(
    lat: float, lng: float, *, kinds: set[str] | frozenset[str] | None = None, max_km: float | None = None
) -> tuple[Place, float] | None:
    """The nearest gazetteer place (optionally of the given kinds / within max_km) and its distance in km."""
    if validate_lat_lng(lat, lng):
        return None
    geocoder = default_gazetteer_geocoder()
    mask = np.array([kinds is None or p.kind in kinds for p in geocoder.places])
    if not mask.any():
        return None
    dist = np.where(mask, haversine_km(lat, lng, geocoder._lats, geocoder._lngs), np.inf)
    i = int(np.argmin(dist))
    if max_km is not None and dist[i] > max_km:
        return None
    return geocoder.places[i], float(dist[i])


# ---------------------------------------------------------------- factory and safe lookup


def make_geocoder(url: str | None = None, *, timeout: float = 5.0) -> Geocoder:
    """The offline gazetteer by default; with a URL ("http://127.0.0.1:8080") a Nominatim client for it."""
    if not url:
        return default_gazetteer_geocoder()
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"geocoder URL must look like http(s)://host[:port][/path], got {url!r}")
    path = parts.path.rstrip("/")
    path = path.removesuffix("/search")  # accept the search endpoint itself; geopy appends /search
    return Nominatim(domain=parts.netloc + path, scheme=parts.scheme, user_agent=USER_AGENT, timeout=timeout)


def locate(geocoder: Geocoder, address: str, *, timeout: float | None = None) -> GeocodeResult | None:
    """Geocode one address; never raises: None (reason logged) for no match, timeouts and service errors."""
    if not isinstance(address, str) or not address.strip():
        logger.info("locate: empty address, nothing to geocode")
        return None
    source = type(geocoder).__name__
    try:
        if timeout is None:
            location = geocoder.geocode(address, exactly_one=True)
        else:
            location = geocoder.geocode(address, exactly_one=True, timeout=timeout)
    except GeopyError as exc:  # timeouts, HTTP errors, unavailable service, bad query
        logger.warning("locate: %s failed for %r: %s: %s", source, address, type(exc).__name__, exc)
        return None
    except Exception:  # a broken geocoder must not break ticket intake
        logger.exception("locate: unexpected error from %s for %r", source, address)
        return None
    if isinstance(location, list):
        location = location[0] if location else None
    if location is None:
        logger.info("locate: no match for %r (%s)", address, source)
        return None
    problems = validate_lat_lng(location.latitude, location.longitude)
    if problems:
        logger.warning(
            "locate: %s returned an invalid point for %r: %s", source, address, "; ".join(problems)
        )
        return None
    raw = location.raw if isinstance(location.raw, dict) else {}
    if isinstance(geocoder, GazetteerGeocoder):
        name, kind, source = raw.get("name_zh") or location.address, raw.get("kind"), "gazetteer"
    else:
        # Nominatim: "name" needs namedetails; the display name's first part is the place itself
        name = raw.get("name") or (location.address or "").split(",")[0].strip()
        kind = raw.get("type") or raw.get("class")
    return GeocodeResult(
        lat=float(location.latitude),
        lng=float(location.longitude),
        name=str(name),
        kind=kind,
        display_name=location.address or str(name),
        source=source,
        critical=is_critical_site(kind),
    )
