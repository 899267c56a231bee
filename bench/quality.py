"""serviceStats and hotspots on 100 000 tickets over a year in PostgreSQL (goals: a month < 1 s, a year < 3 s).

    python bench/quality.py                          # postgresql://postgres@127.0.0.1:5432/gridcrew_quality_bench
    python bench/quality.py --tickets 20000 --keep   # smaller, and keep the database afterwards

Creates the database (dropped first, and again at the end unless --keep), migrates it, loads tickets, events and
feedback with COPY, extracts the hotspot keywords once (timed separately: that is the scheduler's job), then
times each query (first run and the median of --repeat runs) and prints the machine load.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scratch_db import fresh_database
from sqlalchemy import text
from sqlmodel import Session

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.db import make_engine, migrate, normalise_url  # noqa: E402
from dispatch.rules import load_rules  # noqa: E402
from geo.areas import load_region  # noqa: E402
from quality.hotspots import hotspots, index_keywords  # noqa: E402
from quality.repeat_callers import repeat_callers  # noqa: E402
from quality.rules import load_quality_settings, load_risk_rules  # noqa: E402
from quality.stats import service_stats  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/gridcrew_quality_bench"
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
KINDS = [("FAULT_REPAIR", 55), ("EMERGENCY", 5), ("COMPLAINT", 12), ("INQUIRY", 20), ("REPORT", 4), ("SUGGESTION", 4)]
CHANNELS = [("HOTLINE", 50), ("APP", 20), ("WECHAT", 18), ("WEB", 5), ("SMS", 4), ("FIELD", 3)]
AREAS = [("URBAN", 60), ("RURAL", 30), ("REMOTE", 10)]
TEXTS = {
    "FAULT_REPAIR": ["家里停电了", "整栋楼停电，电梯停了", "No power since {h}pm", "Power outage on {street}",
                     "总闸一合就跳闸", "Breaker keeps tripping", "电线杆倾斜，电线垂得很低", "树枝压线，有火花",
                     "变压器噪音很大", "Transformer humming loudly", "路灯不亮", "Streetlight out near {street}",
                     "电表箱冒烟", "漏电保护器跳闸合不上", "Blackout in the whole block"],
    "EMERGENCY": ["电线落地，很危险", "Wire down across {street}", "配电箱起火", "Sparks and smoke from the pole"],
    "COMPLAINT": ["电压低，空调开不了", "Low voltage every evening", "频繁停电，一个月停了{h}次", "服务态度差，推诿",
                  "The service attitude of the staff was terrible", "抢修太慢，等了{h}个小时", "施工扰民，晚上还在干",
                  "电费异常，比上月高很多", "已向12398投诉电压低"],
    "INQUIRY": ["这个月电费为什么这么高", "My electricity bill doubled", "电费怎么缴纳", "计划停电什么时候结束",
                "How do I get an invoice", "充电桩报装流程", "光伏并网怎么申请", "预付费电表余额查询"],
    "REPORT": ["有人私拉电线窃电", "Someone is stealing power from the line on {street}", "电杆被车撞歪了"],
    "SUGGESTION": ["建议小区增加充电桩", "Please add more EV chargers", "建议停电前短信通知"],
}
STREETS = ["Zhongshan Road", "Binjiang Avenue", "Elm Street", "解放路", "人民路", "Nanhu Lane", "东湖路"]


def pick(rng: random.Random, table: list[tuple[str, int]]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def load(engine: Any, total: int, seed: int) -> dict[str, int]:
    """Tickets, their intake (and some reopen) events and feedback, with COPY."""
    rng = random.Random(seed)
    rules = load_rules()
    branches = load_region().branch_codes
    phones = [f"13{rng.randrange(10**9):09d}" for _ in range(total // 3)]
    start = NOW - timedelta(days=365)
    tickets, events, feedback = [], [], []
    for i in range(1, total + 1):
        kind, channel, area = pick(rng, KINDS), pick(rng, CHANNELS), pick(rng, AREAS)
        created = start + timedelta(seconds=rng.randrange(365 * 86400))
        summary = rng.choice(TEXTS[kind]).format(h=rng.randint(2, 11), street=rng.choice(STREETS))
        field = kind in ("FAULT_REPAIR", "EMERGENCY")
        if field:
            respond_by = created + timedelta(minutes=rules.raw["respond_minutes"][area])
            resolve_by = respond_by + timedelta(minutes=rules.raw["restore_minutes_after_arrival"][area])
        else:
            respond_by, resolve_by = created + timedelta(days=1), created + timedelta(days=9)
        done = created < NOW - timedelta(days=2) or rng.random() < 0.5
        responded = created + (timedelta(minutes=rng.lognormvariate(3.6, 0.5)) if field
                               else timedelta(hours=rng.uniform(1, 30))) if done else None
        resolved = responded + (timedelta(minutes=rng.lognormvariate(4.9, 0.5)) if field
                                else timedelta(days=rng.uniform(0.5, 8))) if responded else None
        if resolved is not None and resolved > NOW:
            resolved = None
        status = "CLOSED" if resolved and rng.random() < 0.7 else "RESOLVED" if resolved else "NEW"
        located = rng.random() > 0.01
        tickets.append((
            i, kind, channel, "NORMAL", status, summary, None, None, 30.6 if located else None,
            114.3 if located else None, area, rng.choice(branches) if located else None, "default", "[]", False, None,
            1, None, None, rng.choice(phones), None, "[]", None, created, created, respond_by, resolve_by,
            responded, resolved, None, None, resolved if field else None, None, None, 1))
        events.append((i, created, "NEW", "STATUS", "reported", "bench"))
        if resolved is not None and rng.random() < 0.03:  # reopened once
            events.append((i, resolved - timedelta(minutes=5), "NEW", "STATUS", "reopened", "bench"))
        if resolved is not None and rng.random() < 0.15:
            feedback.append((i, rng.choices([1, 2, 3, 4, 5], [5, 5, 15, 35, 40])[0], None, resolved))
    columns = ("id, kind, channel, priority, status, summary, description, address, lat, lng, area_type, branch, "
               "region, required_skills, needs_generator, critical_load_kw, customers_affected, account_number, "
               "contact_name, contact_phone, phone_last4, preferred_channels, client_request_id, created_at, "
               "updated_at, respond_by, resolve_by, responded_at, resolved_at, eta, etr, power_restored_at, "
               "incident_id, duplicate_of_id, version")
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for table, cols, rows in (("ticket", columns, tickets),
                                  ("ticket_event", "ticket_id, at, status, kind, note, source", events),
                                  ("feedback", "ticket_id, score, comment, created_at", feedback)):
            with cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        cursor.execute("SELECT setval('ticket_id_seq', %s)", (total,))
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return {"tickets": len(tickets), "events": len(events), "feedback": len(feedback)}


def timed(label: str, repeat: int, run: Callable[[], Any]) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    first, median = times[0], statistics.median(times)
    print(f"  {label:<34} first {first * 1000:8.1f} ms   median of {repeat} {median * 1000:8.1f} ms")
    return first, median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=os.environ.get("QUALITY_BENCH_URL", DEFAULT_URL))
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    url = normalise_url(args.url)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()}")
    fresh_database(url)
    engine = make_engine(url)
    try:
        migrate(engine)
        started = time.perf_counter()
        counts = load(engine, args.tickets, args.seed)
        print(f"loaded {counts} in {time.perf_counter() - started:.1f} s")
        rules, region = load_rules(), load_region()
        risk, settings = load_risk_rules(), load_quality_settings()
        with Session(engine) as session:
            started = time.perf_counter()
            indexed = index_keywords(session)
            session.commit()
            print(f"keywords extracted from {indexed} tickets in {time.perf_counter() - started:.1f} s "
                  "(once; the scheduler keeps up incrementally)")
        with engine.begin() as connection:
            connection.execute(text("ANALYZE ticket_keyword"))
        month, year = NOW - timedelta(days=30), NOW - timedelta(days=365)
        results: dict[str, float] = {}
        with Session(engine) as session:
            print("timings (one session, PostgreSQL):")
            for label, begin in (("serviceStats, a month", month), ("serviceStats, a year", year)):
                results[label] = timed(label, args.repeat, lambda b=begin: service_stats(
                    session, rules, region, settings, b, NOW, now=NOW))[1]
            for label, days in (("hotspots, a month", 30), ("hotspots, a year", 365)):
                results[label] = timed(label, args.repeat, lambda d=days: hotspots(
                    session, region, settings, days=d, now=NOW))[1]
            timed("repeatCallers, 30 days", args.repeat, lambda: repeat_callers(session, risk, settings, now=NOW))
            # What the hotspots resolver adds: the check for tickets whose keywords are not extracted yet.
            for label, days in (("pending-keyword check, a month", 30), ("pending-keyword check, a year", 365)):
                timed(label, args.repeat, lambda d=days: index_keywords(session, since=NOW - timedelta(days=2 * d)))
            stats = service_stats(session, rules, region, settings, year, NOW, now=NOW)
            top = hotspots(session, region, settings, days=30, limit=3, now=NOW)
        print(f"year: {stats.ticket_count} tickets, one-time resolution {stats.one_time_resolution_rate:.3f}, "
              f"mean arrival {stats.mean_arrival_minutes:.1f} min, p90 {stats.p90_arrival_minutes:.1f} min, "
              f"satisfaction {stats.satisfaction_mean:.2f}")
        print("top hotspots (30 days): " + "; ".join(f"{h.branch}/{h.category}/{h.label} {h.ticket_count}"
                                                     for h in top))
        goals = {"serviceStats, a month": 1.0, "serviceStats, a year": 3.0, "hotspots, a month": 1.0,
                 "hotspots, a year": 3.0}
        for label, goal in goals.items():
            verdict = "ok" if results[label] < goal else "MISSED"
            print(f"goal {label}: median {results[label]:.3f} s < {goal:.0f} s: {verdict}")
        print(f"machine load after: {os.getloadavg()}")
    finally:
        engine.dispose()
        if not args.keep:
            fresh_database(url, drop_only=True)


if __name__ == "__main__":
    main()
