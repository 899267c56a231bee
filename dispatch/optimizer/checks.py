"""Hard-rule check of any plan: skills, shifts, fixed work, generators, every ticket accounted for."""

from __future__ import annotations

from collections.abc import Sequence

from dispatch.optimizer.model import AssignmentOut, CrewIn, GeneratorIn, OptimizerSettings, Plan, TicketIn


def check_feasibility(
    plan: Plan,
    crews: Sequence[CrewIn],
    tickets: Sequence[TicketIn],
    generators: Sequence[GeneratorIn],
    settings: OptimizerSettings | None = None,
) -> list[str]:
    """Hard-rule violations of a plan (empty list = feasible). Uses the plan's own times."""
    s = settings or OptimizerSettings()
    errs: list[str] = []
    crew_by = {c.id: c for c in crews}
    tick_by = {t.id: t for t in tickets}
    gen_by = {g.id: g for g in generators}
    seen: dict[str, int] = {}
    for a in plan.assignments:
        seen[a.ticket_id] = seen.get(a.ticket_id, 0) + 1
    for u in plan.unassigned:
        seen[u.ticket_id] = seen.get(u.ticket_id, 0) + 1
        if not u.reason.strip():
            errs.append(f"ticket {u.ticket_id} unassigned without a reason")
    for t in tickets:
        if seen.get(t.id, 0) != 1:
            errs.append(f"ticket {t.id} appears {seen.get(t.id, 0)} times (assigned or unassigned)")
    for tid in seen:
        if tid not in tick_by:
            errs.append(f"unknown ticket {tid} in plan")
    by_crew: dict[str, list[AssignmentOut]] = {}
    for a in plan.assignments:
        crew = crew_by.get(a.crew_id)
        t = tick_by.get(a.ticket_id)
        if crew is None or t is None:
            errs.append(f"assignment {a.ticket_id}->{a.crew_id} refers to unknown crew or ticket")
            continue
        by_crew.setdefault(a.crew_id, []).append(a)
        fixed = t.fixed and t.assigned_crew_id in crew_by
        if not fixed and not t.required_skills <= crew.skills:  # a dispatcher's pin overrides skills
            errs.append(f"{crew.id} lacks {sorted(t.required_skills - crew.skills)} for {t.id}")
        if not fixed:
            if a.planned_arrival < crew.available_from:
                errs.append(f"{t.id} planned before {crew.id}'s shift starts")
            if a.planned_finish > crew.shift_end + s.overtime_minutes:
                errs.append(f"{t.id} finishes at {a.planned_finish}, after {crew.id}'s shift + overtime")
            elif a.planned_finish > crew.shift_end and not s.may_use_overtime(t):
                errs.append(f"{t.id} ({t.priority}) finishes at {a.planned_finish}, after {crew.id}'s shift end, "
                            "and is not an emergency")
        if a.planned_finish < a.planned_arrival:
            errs.append(f"{t.id} finishes before it starts")
        if t.fixed and t.assigned_crew_id in crew_by and a.crew_id != t.assigned_crew_id:
            errs.append(f"{t.id} is fixed to {t.assigned_crew_id} but planned on {a.crew_id}")
        if a.generator_id is not None:
            g = gen_by.get(a.generator_id)
            if g is None or not g.available:
                errs.append(f"{t.id} gets unknown/unavailable generator {a.generator_id}")
            elif g.capacity_kw < (t.critical_load_kw or 0.0):
                errs.append(f"generator {g.id} ({g.capacity_kw} kW) too small for {t.id}")
            if not t.needs_generator:
                errs.append(f"{t.id} gets a generator it does not need")
    for t in tickets:  # fixed tickets of known crews must be planned on them
        if t.fixed and t.assigned_crew_id in crew_by and seen.get(t.id) and plan.crew_of(t.id) is None:
            errs.append(f"fixed ticket {t.id} was unassigned")
    for cid, lst in by_crew.items():
        lst.sort(key=lambda a: a.sequence)
        if [a.sequence for a in lst] != list(range(len(lst))):
            errs.append(f"{cid}: sequences are not 0..n-1")
        for x, y in zip(lst, lst[1:], strict=False):
            if y.planned_arrival < x.planned_finish:
                errs.append(f"{cid}: {y.ticket_id} starts before {x.ticket_id} is finished")
        fixed_ids = [
            a.ticket_id
            for a in lst
            if tick_by[a.ticket_id].fixed and tick_by[a.ticket_id].assigned_crew_id in crew_by
        ]
        if [a.ticket_id for a in lst[: len(fixed_ids)]] != fixed_ids:
            errs.append(f"{cid}: fixed (in-progress/pinned) work is not at the start of the route")
        prog = [i for i, a in enumerate(lst) if tick_by[a.ticket_id].in_progress]
        if prog and prog != list(range(len(prog))):
            errs.append(f"{cid}: in-progress work is not first")
        expected = [t.id for t in tickets if t.fixed and t.assigned_crew_id == cid]
        exp_sorted = sorted(
            expected,
            key=lambda i: (
                0 if tick_by[i].status == "ON_SITE" else 1 if tick_by[i].status == "EN_ROUTE" else 2
            ),
        )
        if fixed_ids != exp_sorted:
            errs.append(f"{cid}: fixed work order changed ({fixed_ids} != {exp_sorted})")
    used: dict[str, int] = {}
    for mv in plan.stats.get("generator_moves", []) if plan.stats else []:
        used[mv["generator_id"]] = used.get(mv["generator_id"], 0) + 1
        crew = crew_by.get(mv["crew_id"])
        if crew is None or not crew.can_tow_generator:
            errs.append(f"generator {mv['generator_id']} towed by {mv['crew_id']}, which cannot tow")
    for a in plan.assignments:
        if a.generator_id is not None:
            used.setdefault(a.generator_id, 1)
    for cid, keys in (plan.stats.get("routes", {}) if plan.stats else {}).items():
        picked: str | None = None
        for k in keys:
            if k[0] == "P":
                if picked is not None:
                    errs.append(f"{cid} picks up a second generator while towing one")
                picked = k[2:]
            elif k[0] == "D":
                if picked != k[2:]:
                    errs.append(f"{cid} hooks up {k[2:]} without having picked it up first")
                picked = None
    for gid, n in used.items():
        if n > 1:
            errs.append(f"generator {gid} used at {n} sites")
    planned = {a.ticket_id: a for a in plan.assignments}
    for a in plan.assignments:  # precedence: after the job it depends on is finished (+ gap), and only with it
        t = tick_by.get(a.ticket_id)
        if t is None or t.depends_on is None or t.depends_on not in tick_by or (t.fixed and t.assigned_crew_id):
            continue
        first = planned.get(t.depends_on)
        if first is None:
            errs.append(f"{t.id} is planned but {t.depends_on}, which must come first, is not")
        elif a.planned_arrival < first.planned_finish + max(0, t.depends_gap_minutes):
            errs.append(f"{t.id} starts at {a.planned_arrival}, before {t.depends_on} is done "
                        f"({first.planned_finish}) + {t.depends_gap_minutes} min")
    together = (plan.stats or {}).get("multi_crew", {})
    for a in plan.assignments:  # a multi-crew job has all its crews, all different and qualified, or none
        t = tick_by.get(a.ticket_id)
        if t is None or t.crews_needed <= 1 or (t.fixed and t.assigned_crew_id in crew_by):
            continue
        crews_there = together.get(t.id, {}).get("crews", [])
        if len(set(crews_there)) != t.crews_needed or crews_there[:1] != [a.crew_id]:
            errs.append(f"{t.id} needs {t.crews_needed} different crews at once, planned with {crews_there}")
        for cid in crews_there:
            if cid not in crew_by or not t.required_skills <= crew_by[cid].skills:
                errs.append(f"{t.id}: crew {cid} does not qualify")
    return errs
