"""SFTP servers (any SSH server) as locations.

``location`` is the :class:`~app.locations.base.Location`, holding a ``writer``; both share a
``remote`` (session, root, names, the files' versions); ``connection`` the SSH session with
its host-key check, authentication, reconnects and backoff; ``hostkeys`` reads and extends
``known_hosts``; ``protocol`` sends pipelined SFTP requests, ``transfer`` a file's bytes
with a window of them in flight; ``journal`` gives the shared hub
journal its file operations over SFTP. Modules here import each other directly, never this
package's ``__init__``.
"""

from __future__ import annotations
