"""Identity of a location reached through a URL spec (FTP, SFTP, S3).

Server kinds name themselves the same way: the key is the spec without any password or
secret, the display name is the spec as typed with the password shown as ``***``, and the
conflict-copy label is the host (the bucket for S3). One place, so no kind leaks a password
into the state index or a file name by writing its own.
"""

from __future__ import annotations

from app.locations.base import Location
from app.locations.names import safe_label
from app.locations.spec import LocationSpec


class SpecNamed(Location):
    """A :class:`Location` whose key, name and label come from its :class:`LocationSpec`."""

    spec: LocationSpec

    @property
    def key(self) -> str:
        """``scheme://user@host:port/path`` (never the password or secret)."""
        return self.spec.key

    @property
    def name(self) -> str:
        """The spec as typed, the password or secret shown as ``***``."""
        return self.spec.redacted

    @property
    def label(self) -> str:
        """The host (or bucket) name, reduced to characters safe in a file name."""
        return safe_label(self.spec.host, self.kind)
