"""Service quality from 95598 practice: supervision, repeat-caller risk, hotspots, callbacks, statistics, reports."""
