"""ZIP archives as locations: the location, its archive file, the format, and the staged rewrite.

``location`` is the :class:`~app.locations.base.Location`; ``archive`` owns the file on disk and
its replacement; ``format`` and ``parse`` read and write ZIP records; ``stream`` copies member
data; ``staging`` turns the operations of one batch into the member list of the rewritten
archive. Modules here import each other directly, never this package's ``__init__``, which
imports nothing: ``kind`` (all the registry loads) stays cheap for a run without ZIP.
"""
