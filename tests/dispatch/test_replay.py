"""The storm replay: one seeded event stream played against the dispatch policies on plain data."""

from __future__ import annotations

from dispatch.optimizer import OptimizerSettings, solve
from dispatch.optimizer.replay import StormEvent, run_replay, storm_replay_events
from dispatch.optimizer.scenario import storm_day

ONE = OptimizerSettings(workers=1)


def small() -> tuple[object, list[StormEvent]]:
    sc = storm_day(5, n_crews=6, n_tickets=30, n_generators=0, n_generator_sites=0)
    events = storm_replay_events(5, sc.crews, hours=3, new_tickets=12, overruns=3, unavailable=1, aid_crews=2)
    return sc, events


def test_the_event_stream_is_seeded_and_has_every_kind_of_event() -> None:
    sc, events = small()
    assert events == small()[1]
    assert {e.kind for e in events} == {"tickets", "overrun", "unavailable", "crews"}
    assert sum(len(e.tickets) for e in events) == 12
    assert all(e.at < 180 for e in events) and events == sorted(events, key=lambda e: (e.at, e.kind))
    urgent = [e for e in events if any(t.priority in ("EMERGENCY", "CRITICAL") for t in e.tickets)]
    assert all(len(e.tickets) == 1 for e in urgent)  # an urgent report is its own event, not batched
    arrivals = [(e.at, t) for e in events for t in e.tickets]
    assert all(t.respond_by is None or t.respond_by >= at for at, t in arrivals)


def test_every_policy_plays_the_stream_and_re_planning_counts_its_moves() -> None:
    sc, events = small()
    results = {p: run_replay(sc, events, p, ONE, hours=3, initial_time_limit_s=1.0, event_time_limit_s=0.3)  # type: ignore[arg-type]
               for p in ("greedy", "once", "replan")}
    for r in results.values():
        assert r.customer_minutes > 0 and 0 < r.served <= 30 + 12
        assert sum(r.late_by_priority.values()) >= r.late_urgent
    assert results["greedy"].replans == 0 and results["greedy"].moved_per_replan == []
    replan = results["replan"]
    processed = [e for e in events if e.kind != "overrun"]  # an overrun of an idle crew changes nothing
    assert len(processed) <= replan.replans <= len(events)
    assert len(replan.moved_per_replan) == replan.replans
    assert sum(n for n, _, _ in replan.stats["moved_by_event"].values()) == replan.replans


def test_without_events_the_crews_carry_out_the_initial_plan_as_planned() -> None:
    sc, _ = small()
    initial = solve(sc.crews, sc.tickets, [], ONE, time_limit_s=1.0)  # type: ignore[attr-defined]
    result = run_replay(sc, [], "once", ONE, hours=3, initial=initial)  # type: ignore[arg-type]
    reached = {a.ticket_id: a.planned_arrival for a in initial.assignments if a.planned_arrival <= 180}
    assert result.served == len(reached)
    expected = sum(t.customers_affected * min(180, reached.get(t.id, 180))
                   for t in sc.tickets if t.loss_of_supply)  # type: ignore[attr-defined]
    assert result.customer_minutes == expected
    assert result.replans == 0
