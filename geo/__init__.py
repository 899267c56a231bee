"""Coordinates, geocoding of addresses, area types and branches of a region, and travel times."""
