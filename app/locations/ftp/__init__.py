"""FTP and FTPS servers as locations.

``location`` is the :class:`~app.locations.base.Location`: it connects and holds three parts,
``scanner`` (listing the tree), ``reader`` (``stat`` and downloads) and ``writer`` (uploads,
deletes, renames), which share one ``remote`` (the connection, the root, what the server
offers). ``client`` is the connection with its reconnects and backoff; ``listing`` parses
directory listings; ``transfer`` streams uploads and downloads; ``journal`` records exact
versions for other FileSyncs sharing the server. Modules here import each other directly, never this
package's ``__init__``.
"""

from __future__ import annotations
