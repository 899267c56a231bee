"""Specification of geocoding: offline gazetteer, Nominatim factory (against a local server), `locate`."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from geopy.geocoders import Nominatim
from geopy.geocoders.base import Geocoder
from geopy.location import Location

from geo.areas import classify_area, in_region, load_region
from geo.geocoding import (
    GazetteerGeocoder,
    critical_site_kinds,
    house_number,
    is_critical_site,
    load_gazetteer,
    locate,
    make_geocoder,
    nearest_place,
)
from geo.points import haversine_km


@pytest.fixture(scope="module")
def gazetteer() -> GazetteerGeocoder:
    return GazetteerGeocoder()


def place(name_zh: str):
    return next(p for p in load_gazetteer() if p.name_zh == name_zh)


# ------------------------------------------------------------------ the gazetteer data


def test_gazetteer_size_kinds_and_coordinates():
    places = load_gazetteer()
    assert 250 <= len(places) <= 400
    kinds = {p.kind for p in places}
    assert {"street", "village", "township", "residential", "hospital", "water_works", "school"} <= kinds
    assert {"metro_depot", "substation", "market", "traffic_control", "nursing_home"} <= kinds
    region = load_region()
    assert all(in_region(region, p.lat, p.lng) for p in places)
    areas = {classify_area(region, p.lat, p.lng) for p in places}
    assert areas == {"URBAN", "RURAL", "REMOTE"}


def test_critical_site_kinds():
    assert critical_site_kinds() == {"hospital", "water_works", "traffic_control", "nursing_home"}
    assert is_critical_site("hospital") and not is_critical_site("school") and not is_critical_site(None)


# ------------------------------------------------------------------ offline geocoding


def test_is_a_real_geopy_geocoder(gazetteer):
    assert isinstance(gazetteer, Geocoder)
    assert isinstance(make_geocoder(), GazetteerGeocoder)
    loc = gazetteer.geocode("岚山火车站")
    assert isinstance(loc, Location)
    assert loc.raw["kind"] == "landmark"


def test_chinese_address_with_house_number(gazetteer):
    street = place("中山路")
    loc = gazetteer.geocode("湖北省岚山市中山路８８号３栋２单元５０１室")  # full-width digits
    assert loc.raw["name_zh"] == "中山路" and loc.raw["house_number"] == 88
    assert haversine_km(loc.latitude, loc.longitude, street.lat, street.lng) < 1.0
    # the same house number lands on the same point; another number nearby but elsewhere
    again = gazetteer.geocode("中山路 88 号")
    assert (again.latitude, again.longitude) == (loc.latitude, loc.longitude)
    other = gazetteer.geocode("中山路120号")
    assert (other.latitude, other.longitude) != (loc.latitude, loc.longitude)


def test_english_address(gazetteer):
    street = place("中山路")
    loc = gazetteer.geocode("No. 88, Zhongshan Rd., Lanshan City")
    assert loc.raw["name_zh"] == "中山路"
    assert haversine_km(loc.latitude, loc.longitude, street.lat, street.lng) < 1.0
    hospital = gazetteer.geocode("LANSHAN FIRST PEOPLE'S HOSPITAL, emergency building")
    assert hospital.raw["name_zh"] == "岚山市第一人民医院" and hospital.raw["critical"] is True
    assert house_number("88 Zhongshan Road") == 88


def test_longest_and_most_specific_name_wins(gazetteer):
    assert gazetteer.geocode("中山路菜市场门口").raw["name_zh"] == "中山路菜市场"
    assert gazetteer.geocode("东湖新城科技路12号").raw["name_zh"] == "科技路"  # not the district
    village = next(p for p in load_gazetteer() if p.kind == "village")
    assert gazetteer.geocode(f"{village.name_zh}3组").raw["name_zh"] == village.name_zh
    assert gazetteer.geocode("岚山市").raw["kind"] == "district"  # a town alone is still a (coarse) answer
    found = gazetteer.geocode("中山路菜市场", exactly_one=False)
    assert [loc.raw["name_zh"] for loc in found][:2] == ["中山路菜市场", "中山路"]


def test_nonsense_gives_none_and_never_raises(gazetteer):
    for query in ["asdf qwerty", "老街后面那个小卖部旁边", "", "   ", "88号", "No. 12"]:
        assert gazetteer.geocode(query) is None
        assert locate(gazetteer, query) is None
    assert locate(gazetteer, None) is None  # type: ignore[arg-type]


def test_locate_returns_a_result(gazetteer):
    result = locate(gazetteer, "岚山第一水厂停电")
    assert result is not None
    assert (result.name, result.kind, result.source, result.critical) == (
        "岚山第一水厂",
        "water_works",
        "gazetteer",
        True,
    )
    assert in_region(load_region(), result.lat, result.lng)


def test_reverse_and_nearest_place(gazetteer):
    hospital = place("岚山市第一人民医院")
    p, km = nearest_place(hospital.lat + 0.0005, hospital.lng, kinds={"hospital"})
    assert p == hospital and km < 0.1
    assert nearest_place(0.0, 0.0, max_km=5) is None
    assert gazetteer.reverse((hospital.lat, hospital.lng)).raw["name_zh"] == hospital.name_zh


# ------------------------------------------------------------------ Nominatim against a local server


class _FakeNominatim(BaseHTTPRequestHandler):
    """Answers /search in Nominatim's JSON format; 'slow' outlasts the client timeout, 'boom' is a 500."""

    requests: list[tuple[str, dict[str, list[str]], str]] = []

    def do_GET(self) -> None:  # http.server's naming
        url = urlsplit(self.path)
        params = parse_qs(url.query)
        type(self).requests.append((url.path, params, self.headers.get("User-Agent", "")))
        q = params.get("q", [""])[0]
        try:
            if "slow" in q:
                time.sleep(1.5)
            if "boom" in q:
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"internal error")
                return
            results = (
                []
                if "nothing" in q
                else [
                    {
                        "place_id": 1,
                        "lat": "30.6210",
                        "lon": "114.3050",
                        "class": "amenity",
                        "type": "hospital",
                        "display_name": "Test Hospital, Lanshan, China",
                    }
                ]
            )
            body = json.dumps(results).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass


@pytest.fixture
def nominatim_url(monkeypatch) -> Iterator[str]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    _FakeNominatim.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeNominatim)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_make_geocoder_with_url_talks_to_nominatim(nominatim_url):
    geocoder = make_geocoder(nominatim_url)
    assert isinstance(geocoder, Nominatim)
    loc = geocoder.geocode("Test Hospital")
    assert (loc.latitude, loc.longitude) == (30.621, 114.305)
    path, params, agent = _FakeNominatim.requests[-1]
    assert path == "/search" and params["q"] == ["Test Hospital"] and params["format"] == ["json"]
    assert agent == "gridcrew"

    result = locate(geocoder, "Test Hospital")
    assert result is not None
    assert (result.lat, result.lng, result.name, result.kind) == (
        30.621,
        114.305,
        "Test Hospital",
        "hospital",
    )
    assert result.critical and result.source == "Nominatim"


def test_make_geocoder_keeps_a_path_prefix(nominatim_url):
    geocoder = make_geocoder(nominatim_url + "/nominatim/search")
    assert geocoder.api == nominatim_url + "/nominatim/search"


def test_make_geocoder_rejects_bad_urls():
    with pytest.raises(ValueError):
        make_geocoder("ftp://example.org")
    with pytest.raises(ValueError):
        make_geocoder("localhost:8080")


def test_locate_returns_none_on_timeout_error_or_no_result(nominatim_url, caplog):
    geocoder = make_geocoder(nominatim_url, timeout=0.3)
    with caplog.at_level(logging.INFO, logger="geo.geocoding"):
        assert locate(geocoder, "slow street") is None
        # A read timeout as a rule; on a loaded machine the connect itself may time out (GeocoderUnavailable).
        assert "GeocoderTimedOut" in caplog.text or "GeocoderUnavailable" in caplog.text
        assert locate(geocoder, "boom road") is None
        assert "GeocoderServiceError" in caplog.text
        assert locate(geocoder, "nothing here") is None
        assert "no match" in caplog.text


def test_locate_returns_none_when_nothing_listens():
    geocoder = make_geocoder("http://127.0.0.1:9", timeout=0.5)  # discard port: connection refused
    assert locate(geocoder, "岚山火车站") is None
