"""AWS Signature Version 4 for the direct PUTs, as botocore's ``S3SigV4Auth`` signs them.

Signing a small PUT with botocore (an ``AWSRequest`` and ``S3SigV4Auth.add_auth``) costs about
0.08 ms of CPU, most of it in its general machinery: header containers built on
``email.message``, the URL split again for each part of the canonical request, and the signing
key derived anew (four HMACs) for every request although it changes once a day. For one kind
of request (a PUT of a whole body, to a path already quoted, header-signed) the same algorithm
is a few lines: the canonical request, the string to sign, and the key kept for its day.

What is signed is exactly what ``S3SigV4Auth`` signs for such a request with no context: every
header given (``User-Agent`` is added after signing) plus ``host``, ``X-Amz-Date``,
``X-Amz-Content-SHA256`` (the body's SHA-256: botocore signs the payload unless an HTTPS
request carries a checksum header, which these do not) and ``X-Amz-Security-Token`` for
temporary credentials. A test signs the same requests with both and compares the headers.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from typing import NamedTuple

from botocore.auth import SIGNED_HEADERS_BLACKLIST

ALGORITHM = "AWS4-HMAC-SHA256"


class Credentials(NamedTuple):
    """Frozen credentials (botocore's ``ReadOnlyCredentials`` has these fields)."""

    access_key: str
    secret_key: str
    token: str | None


def amz_date(now: float | None = None) -> str:
    """``now`` (seconds since the epoch, default the current time) as ``X-Amz-Date`` wants it."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))


def canonical_query(query: str) -> str:
    """A URL's query (without ``?``) sorted as SigV4 wants it; botocore takes it as it is
    written in the URL (already quoted), pair by pair."""
    if not query:
        return ""
    pairs = sorted(pair.partition("=")[::2] for pair in query.split("&"))
    return "&".join(f"{key}={value}" for key, value in pairs)


class Signer:
    """Signs PUTs for one host, region and service; keeps the day's signing key."""

    def __init__(self, host: str, region: str, service: str) -> None:
        """``host`` as the ``Host`` header names it (with the port unless it is the default)."""
        self.host = host
        self.region = region
        self.service = service
        self._key: tuple[str, str, bytes] | None = None  # (secret, day, key)

    def _signing_key(self, secret: str, day: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == secret and cached[1] == day:
            return cached[2]
        key = _hmac(f"AWS4{secret}".encode(), day)
        for part in (self.region, self.service, "aws4_request"):
            key = _hmac(key, part)
        self._key = (secret, day, key)
        return key

    def sign(
        self,
        credentials: Credentials,
        method: str,
        path: str,
        *,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        when: str | None = None,
    ) -> dict[str, str]:
        """``headers`` with the signing headers and ``Authorization`` added, for ``method`` of
        ``path`` (quoted as sent) with ``query`` (without ``?``) and ``body``, signed at
        ``when`` (an ``X-Amz-Date``; default now)."""
        when = when or amz_date()
        day = when[:8]
        signed = dict(headers)
        payload = hashlib.sha256(body).hexdigest()
        signed["X-Amz-Date"] = when
        signed["X-Amz-Content-SHA256"] = payload
        if credentials.token:
            signed["X-Amz-Security-Token"] = credentials.token
        canonical = {
            name.lower(): " ".join(value.split())
            for name, value in signed.items()
            if name.lower() not in SIGNED_HEADERS_BLACKLIST
        }
        canonical["host"] = self.host
        names = sorted(canonical)
        signed_names = ";".join(names)
        lines = "".join(f"{name}:{canonical[name]}\n" for name in names)
        request = f"{method}\n{path}\n{canonical_query(query)}\n{lines}\n{signed_names}\n{payload}"
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        digest = hashlib.sha256(request.encode()).hexdigest()
        to_sign = f"{ALGORITHM}\n{when}\n{scope}\n{digest}"
        key = self._signing_key(credentials.secret_key, day)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        signed["Authorization"] = (
            f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
            f"SignedHeaders={signed_names}, Signature={signature}"
        )
        return signed


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()
