"""Where ``--web`` serves by default.

Apart from :mod:`app.web.bind` so that the command line can name them in its help without
loading that module (and its dataclasses) at every start.
"""

from __future__ import annotations

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8390
