"""The S3 kind, as the registry knows it: a bucket (and key prefix) on any S3-compatible store.

Accepted: ``s3://bucket/optional/prefix`` (or ``s3:bucket/prefix``), optionally with an access
key and secret ``s3://KEY:SECRET@bucket/prefix`` (percent-encoded; the dialog keeps the secret
in the keyring), and URL query options ``endpoint=URL`` (anything but AWS), ``region=``,
``profile=`` (from ``~/.aws``) and ``path_style=yes|no`` (default: yes with an endpoint).
Without a key the standard AWS chain is used (environment, ``~/.aws`` files, profile).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from app.errors import SpecError
from app.locations.base import LocationKind
from app.locations.form.checks import listing_test
from app.locations.s3.form import s3_form
from app.locations.spec import LocationSpec, redact_text, server_url

if TYPE_CHECKING:
    from app.locations.base import Location
    from app.locations.options import LocationOptions

#: Not a port anyone types: the spec's port field is unused by S3 (HTTPS is the default).
DEFAULT_PORT = 443
OPTIONS = ("endpoint", "region", "profile", "path_style", "poll")


def _parse(text: str, prefix: str, rest: str) -> LocationSpec:
    url = text if text.lower().startswith("s3://") else f"s3://{rest.lstrip('/')}"
    spec = server_url("s3", url, DEFAULT_PORT)
    shown = redact_text(text)
    if urlsplit(url).port is not None:
        raise SpecError(f"{shown!r}: a bucket has no port; give endpoint=http://host:port")
    for name, value in spec.options:
        if name not in OPTIONS:
            raise SpecError(f"{shown!r}: unknown option {name!r} (known: {', '.join(OPTIONS)})")
        if name == "endpoint" and urlsplit(value).scheme not in ("http", "https"):
            raise SpecError(f"{shown!r}: endpoint must be an http:// or https:// URL")
        if name == "path_style" and value.lower() not in ("yes", "no", "true", "false"):
            raise SpecError(f"{shown!r}: path_style must be yes or no")
    return spec


def _open(spec: LocationSpec, options: LocationOptions) -> Location:
    """The location; boto3 (~35 MiB, 0.15 s) is imported only now, never by a run without S3."""
    from app.locations.s3.location import S3Location

    return S3Location.from_spec(spec, options)


S3 = LocationKind(
    name="s3",
    title="S3 bucket",
    prefixes=("s3",),
    url_schemes=("s3",),
    forms=("s3://bucket/prefix?endpoint=URL",),
    parse=_parse,
    from_spec=_open,
    form=s3_form(_parse),
    test=listing_test(_open),
    has_password=True,
    default_port=DEFAULT_PORT,
    # Every poll is a paid ListObjectsV2 call per 1,000 keys on a store many machines share.
    default_poll_interval=10.0,
)
