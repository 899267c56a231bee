"""Maintenance scripts run from the Makefile (`make lock`, `make audit`); not part of the installed product."""
