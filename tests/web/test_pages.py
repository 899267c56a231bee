"""The dispatcher board and the customer tracking page in headless chromium, against a real server.

One story, as people would live it: the dispatcher opens the board on the demo region, pins a ticket to a crew
by hand, optimises, reads the proposed plan with its reasons, commits it; a customer follows their ticket on a
phone; the crew's device pushes EN_ROUTE and ON_SITE through syncPush and both pages show it without a reload;
once the crew reports RESOLVED the customer rates the repair. Screenshots of both pages are test artefacts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlmodel import Session

from api.auth import Role, issue_token
from core.clock import utcnow
from core.db import make_engine
from dispatch.tickets import get_ticket
from tests.web.live_server import Server, artifacts_dir

Page = Any  # playwright.sync_api.Page (the package is optional: the fixtures skip or fail without it)
PUSH = """mutation($input: SyncPushInput!) { syncPush(input: $input) {
  results { clientMutationId applied duplicate error { code message } } errors { code message } } }"""
REGISTER = """mutation($input: RegisterDeviceInput!) { registerDevice(input: $input) { token errors { message } } }"""


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


class Watch:
    """What a page did besides rendering: requests to other origins and script errors, both must stay empty."""

    def __init__(self, page: Page, server: Server) -> None:
        self.foreign: list[str] = []
        self.errors: list[str] = []
        host = server.url.removeprefix("http://")
        allowed = (f"http://{host}/", f"ws://{host}/", "data:")

        def seen(url: str) -> None:
            if not url.startswith(allowed):
                self.foreign.append(url)

        page.on("request", lambda request: seen(request.url))
        page.on("websocket", lambda socket: seen(socket.url))
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        page.on("console", lambda message: self.errors.append(message.text) if message.type == "error" else None)


@pytest.fixture
def board(browser: Any, server: Server) -> Iterator[tuple[Page, Watch]]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="en-GB")
    page = context.new_page()
    watch = Watch(page, server)
    yield page, watch
    context.close()


@pytest.fixture
def phone(browser: Any, server: Server) -> Iterator[tuple[Page, Watch]]:
    """A phone-sized page whose browser speaks Chinese."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="zh-CN")
    page = context.new_page()
    watch = Watch(page, server)
    yield page, watch
    context.close()


def open_tickets(server: Server, token: str) -> list[dict[str, Any]]:
    query = """{ tickets(status: [NEW, ASSIGNED, EN_ROUTE, ON_SITE, ON_HOLD], first: 200) { edges { node {
      id number kind status priority overdue needsGenerator requiredSkills location { lat } duplicateOf { id }
      assignment { pinned crew { id name } } } } } }"""
    return [e["node"] for e in server.gql(query, token=token)["tickets"]["edges"]]


def phone_digits(server: Server, number: str) -> str:
    """The last four digits the customer knows (the API never shows them: read from the server's database)."""
    engine = make_engine(server.database_url)
    try:
        with Session(engine) as session:
            ticket = get_ticket(session, number=number)
            assert ticket is not None and ticket.phone_last4, f"demo ticket {number} has no phone"
            return ticket.phone_last4
    finally:
        engine.dispose()


def push(server: Server, token: str, device: str, ticket_id: str, *statuses: str) -> None:
    mutations = [{"clientMutationId": f"{device}-{status}", "kind": "STATUS_CHANGE", "ticketId": ticket_id,
                  "status": status, "occurredAt": utcnow().isoformat()} for status in statuses]
    mutations.append({"clientMutationId": f"{device}-gps-{len(statuses)}", "kind": "LOCATION",
                      "location": {"lat": 30.61, "lng": 114.29}, "occurredAt": utcnow().isoformat()})
    results = server.gql(PUSH, {"input": {"deviceId": device, "mutations": mutations}}, token)["syncPush"]
    assert results["errors"] == [] and all(r["applied"] for r in results["results"]), results


def test_the_pages_and_their_assets_come_from_this_server_only(server: Server) -> None:
    for path, marker in (("/board", "board.js"), ("/track", "track.js")):
        response = httpx.get(server.url + path)
        assert response.status_code == 200 and marker in response.text
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert not re.search(r"""(src|href)=["']https?://""", response.text)  # no CDN
    script = httpx.get(server.url + "/web/board.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert not re.search(r"""from\s+["']https?://""", script.text)
    region = httpx.get(server.url + "/region.geojson").json()
    kinds = {f["properties"]["kind"] for f in region["features"]}
    assert {"outline", "area", "branch", "centre"} <= kinds and region["name"] == {"en": "Lanshan", "zh": "岚山"}


def test_dispatcher_commits_a_plan_and_the_customer_sees_the_crew_arrive_without_reloading(
        server: Server, board: tuple[Page, Watch], phone: tuple[Page, Watch]) -> None:
    dispatcher = server.token()
    shots = artifacts_dir()
    page, board_watch = board

    # The board opens with a token in the URL (then dropped from the address bar) and draws the demo region.
    page.goto(f"{server.url}/board?token={dispatcher}")
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=15000)
    assert "token=" not in page.url
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    tickets = open_tickets(server, dispatcher)
    on_map = [t for t in tickets if t["location"] and not t["duplicateOf"]]
    expect(page.locator("circle.ticket")).to_have_count(len(on_map))
    expect(page.locator("#crews .crew-item")).to_have_count(10)
    expect(page.locator("rect.crew.home")).to_have_count(10)  # no device has reported a position yet
    expect(page.locator("path.generator")).to_have_count(3)
    assert page.locator("path.area").count() >= 2 and page.locator("path.outline").count() == 1
    waiting = [t for t in tickets if t["kind"] in {"FAULT_REPAIR", "EMERGENCY"} and t["status"] == "NEW"
               and not t["assignment"] and not t["duplicateOf"]]
    expect(page.locator("#unassigned .ticket-item")).to_have_count(len(waiting))
    late = [t for t in tickets if t["overdue"]]
    assert late, "the demo has tickets past their deadline"
    expect(page.locator("#overdue .ticket-item")).to_have_count(len(late))
    expect(page.locator("circle.halo")).to_have_count(len([t for t in late if t in on_map]))

    # Assign and pin one ticket by hand.
    chosen = next(t for t in waiting if not t["needsGenerator"] and t["location"])
    page.locator(f'#unassigned .ticket-item[data-number="{chosen["number"]}"]').click()
    expect(page.locator("#detail h2")).to_have_text(chosen["number"])
    crew_option = page.locator("#assign-crew option:not([value=''])").first
    pinned_crew = crew_option.get_attribute("value")
    page.select_option("#assign-crew", pinned_crew)
    page.check("#assign-pin")
    page.click("#assign-submit")
    expect(page.locator("#detail")).to_contain_text("pinned")
    expect(page.locator(f'circle.ticket[data-number="{chosen["number"]}"]')).to_have_attribute("data-status",
                                                                                              "ASSIGNED")

    # Optimise: the proposal comes with its reasons and changes nothing until it is committed.
    page.select_option("#time-limit", "2")
    page.click("#optimise")
    proposal = page.locator("#proposal")
    expect(proposal.locator("h2")).to_contain_text("Proposed plan", timeout=30000)
    assert proposal.locator(".plan-crew li .reason").count() > 0
    assert all(text.strip() not in {"", "—"} for text in proposal.locator(".plan-crew li .reason").all_inner_texts())
    expect(proposal.locator(f'li:has(strong:text-is("{chosen["number"]}"))')).to_contain_text("pinned")
    assert page.locator("path.route.proposed").count() > 0
    still_new = [t for t in open_tickets(server, dispatcher) if t["status"] == "NEW" and t in waiting]
    assert still_new, "a proposal must not assign anything"
    page.screenshot(path=str(shots / "board-proposal.png"), full_page=True)
    page.click("#commit-plan")
    expect(page.locator(".toast-item.ok")).to_contain_text("committed", timeout=15000)
    expect(proposal).to_be_hidden()

    after = open_tickets(server, dispatcher)
    assigned = [t for t in after if t["status"] == "ASSIGNED" and t["kind"] in {"FAULT_REPAIR", "EMERGENCY"}]
    assert assigned, "the committed plan assigns the demo's field work"
    pinned = next(t for t in after if t["number"] == chosen["number"])
    assert pinned["assignment"]["pinned"] and pinned["assignment"]["crew"]["id"] == pinned_crew
    expect(page.locator("#unassigned .ticket-item")).to_have_count(
        len([t for t in after if t in waiting or (t["status"] == "NEW" and t["kind"] in {"FAULT_REPAIR", "EMERGENCY"}
             and not t["assignment"] and not t["duplicateOf"])]))
    assert page.locator("path.route").count() > 0

    # The customer follows the ticket on a phone, in Chinese (the browser's language).
    followed = next(t for t in assigned if t["number"] != chosen["number"] and t["location"])
    digits = phone_digits(server, followed["number"])
    mobile, phone_watch = phone
    mobile.goto(f"{server.url}/track")
    expect(mobile.locator("h1")).to_have_text("抢修进度查询")
    mobile.fill("#number", followed["number"])
    mobile.fill("#last4", "0000" if digits != "0000" else "1111")
    mobile.click("#lookup button[type=submit]")
    expect(mobile.locator("#lookup-error")).to_have_text("未找到该工单，请核对工单号和手机号后四位。")
    mobile.fill("#last4", digits)
    mobile.click("#lookup button[type=submit]")
    status = mobile.locator("#status")
    expect(status).to_have_attribute("data-status", "ASSIGNED")
    expect(status).to_have_text("已派单")
    expect(mobile.locator("#live")).to_have_attribute("data-state", "live")
    mobile.evaluate("window.sameDocument = true")
    page.evaluate("window.sameDocument = true")

    # The crew's device reports on the way, then on site, through syncPush.
    crew_id = followed["assignment"]["crew"]["id"]
    device = f"web-test-tablet-{crew_id[-6:].strip('=')}"
    registered = server.gql(REGISTER, {"input": {"deviceId": device, "crewId": crew_id}}, dispatcher)
    device_token = registered["registerDevice"]["token"]
    push(server, device_token, device, followed["id"], "EN_ROUTE", "ON_SITE")

    expect(status).to_have_attribute("data-status", "ON_SITE", timeout=15000)
    expect(status).to_have_text("抢修人员已到达现场")
    expect(mobile.locator("#timeline")).to_contain_text("抢修人员已到达现场，正在处理故障")
    marker = page.locator(f'circle.ticket[data-number="{followed["number"]}"]')
    expect(marker).to_have_attribute("data-status", "ON_SITE", timeout=15000)
    # one push, one transaction: the board hears of the ticket once, already on site
    expect(page.locator("#feed li").first).to_contain_text(f"{followed['number']} assigned → on site")
    expect(page.locator(f'rect.crew.gps[data-id="{crew_id}"]')).to_have_count(1)  # its last GPS position
    assert mobile.evaluate("window.sameDocument") is True and page.evaluate("window.sameDocument") is True
    assert mobile.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scrolling"
    mobile.screenshot(path=str(shots / "track-on-site-zh.png"), full_page=True)
    page.screenshot(path=str(shots / "board-live.png"), full_page=True)

    # Repaired: the feedback form opens; the customer switches to English and rates the repair.
    push(server, device_token, device, followed["id"], "RESOLVED")
    expect(status).to_have_attribute("data-status", "RESOLVED", timeout=15000)
    expect(mobile.locator("#feedback-form")).to_be_visible()
    expect(marker).to_have_count(0, timeout=15000)  # resolved work leaves the board
    mobile.click("#lang")
    expect(status).to_have_text("Repaired")
    expect(mobile.locator("h1")).to_have_text("Repair tracking")
    mobile.click('label[for="score-5"]')
    mobile.fill("#comment", "Quick and friendly crew")
    mobile.screenshot(path=str(shots / "track-feedback-en.png"), full_page=True)
    mobile.click("#feedback-form button[type=submit]")
    expect(mobile.locator("#feedback-done")).to_have_text("Thank you for your feedback!")
    again = server.gql("""mutation($i: SubmitFeedbackInput!) { submitFeedback(input: $i) { errors { code } } }""",
                       {"i": {"ticketNumber": followed["number"], "phoneLast4": digits, "score": 1}})
    assert again["submitFeedback"]["errors"] == [{"code": "DUPLICATE"}]  # the page's feedback was stored

    for watch in (board_watch, phone_watch):
        assert watch.foreign == [] and watch.errors == []


def test_the_board_opens_for_dispatchers_only(server: Server, board: tuple[Page, Watch]) -> None:
    page, watch = board
    page.goto(f"{server.url}/board")
    expect(page.locator("#login")).to_be_visible()
    page.fill("#token", server.token() + "x")  # a broken signature
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("not valid")
    page.fill("#token", issue_token(Role.CREW, crew_id=1, settings=server.settings))
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("crew token can't open the board")
    expect(page.locator("#board")).to_be_hidden()
    assert watch.foreign == []
