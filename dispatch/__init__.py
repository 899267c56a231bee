"""Tickets, incidents and the dispatch optimizer: what happens to a report from intake to a crew's route."""
