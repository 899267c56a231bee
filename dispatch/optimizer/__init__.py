"""Dispatch optimizer: plain data in (crews, tickets, generators), plain-data plan out (OR-Tools routing)."""

from dispatch.optimizer.checks import check_feasibility
from dispatch.optimizer.greedy import greedy_plan
from dispatch.optimizer.insertion import insert_ticket
from dispatch.optimizer.model import (
    AssignmentOut,
    CrewIn,
    GeneratorIn,
    OptimizerSettings,
    Plan,
    TicketIn,
    UnassignedOut,
)
from dispatch.optimizer.plan import evaluate
from dispatch.optimizer.solve import solve
from dispatch.optimizer.vrptw import solve_vrptw

__all__ = [
    "AssignmentOut",
    "CrewIn",
    "GeneratorIn",
    "OptimizerSettings",
    "Plan",
    "TicketIn",
    "UnassignedOut",
    "check_feasibility",
    "evaluate",
    "greedy_plan",
    "insert_ticket",
    "solve",
    "solve_vrptw",
]
