"""Watchers: producers that turn a location's changes into :class:`Change` records for ONE queue."""
