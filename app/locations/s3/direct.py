"""Small PUTs and listings without the client's request pipeline: our SigV4, our connections.

Small uploads are bound by CPU, and a ``put_object`` through the boto3 client costs about
1.1 ms of it (parameter checks, endpoint rules, a dozen event hooks, signing, the HTTP layer,
parsing the reply); signing the same request with SigV4 as botocore's ``S3SigV4Auth`` does
(:mod:`.sigv4`) and sending it over kept-alive connections (:mod:`.httppool`) costs about a
tenth.
Everything that decides what the request means stays the client's:

* the URL (endpoint, path or virtual-hosted style, query) and the signing region and name are
  taken from the client's own first PUT of a file (its ``before-sign`` event), so they are
  exactly what its requests use;
* the credentials are the client's session's, frozen per request (refreshable ones refresh);
* retries follow botocore's ``standard`` policy with the client's four attempts (its retry
  conditions, its backoff for 5xx, throttling and broken connections, and its retry quota);
* an answer other than success is parsed by botocore's own rest-xml parser and raised as the
  ``ClientError`` subclass the client would raise, and a broken connection as botocore's
  exception for it, so :meth:`S3Connection.call` turns both into the same FileSync errors.

It is not used for bodies from 1 MiB on (the client asks ``Expect: 100-continue`` first), nor
where anything is unusual: a signature other than SigV4 (S3 Express buckets,
for one), no credentials, a proxy, a custom CA bundle for an HTTPS endpoint; and an answer
saying the request went to the wrong place (a redirect, another region) raises
:class:`Misdirected`, after which the location uses the client for every PUT.
"""

from __future__ import annotations

import os
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote, urlsplit

import botocore
import botocore.exceptions as bex
import botocore.httpsession
from botocore.awsrequest import AWSRequest, AWSResponse, HeadersDict, HTTPHeaders
from botocore.parsers import ResponseParserError, ResponseParserFactory
from botocore.retries.quota import RetryQuota
from botocore.retries.standard import (
    ExponentialBackoff,
    RetryContext,
    RetryEventAdapter,
    RetryPolicy,
    RetryQuotaChecker,
    StandardRetryConditions,
    ThrottlingErrorDetector,
)

from app.locations.s3.httppool import Connections, Reply
from app.locations.s3.listxml import list_query, parse_listing
from app.locations.s3.sigv4 import Credentials, Signer

if TYPE_CHECKING:
    import botocore.session
    from botocore.model import OperationModel
    from mypy_boto3_s3.client import S3Client

#: Answers meaning the request went to the wrong place (another region, another endpoint).
MISDIRECTED_CODES = frozenset(
    {
        "PermanentRedirect",
        "TemporaryRedirect",
        "AuthorizationHeaderMalformed",
        "IllegalLocationConstraintException",
    }
)
#: Tells these PUTs apart from the client's in a server's logs.
USER_AGENT = f"FileSync-direct-put Botocore/{botocore.__version__}"
#: The header names of the conditions ``upload`` passes in boto3's spelling.
CONDITION_HEADERS = {"IfMatch": "If-Match", "IfNoneMatch": "If-None-Match"}


class Misdirected(Exception):
    """The server says a direct PUT went to the wrong place: use the client from now on."""


@dataclass(frozen=True)
class Target:
    """Where and how the client sent a PUT of the bucket: the URL up to the key and the query
    after it, and the region and service name it signed for."""

    base: str
    query: str
    region: str
    service: str


def target_of(request: AWSRequest, key: str, **signing: Any) -> Target | None:
    """The target of the client's PUT of ``key`` about to be signed (``before-sign``'s
    ``signature_version``, ``region_name`` and ``signing_name`` in ``signing``), or None if
    it is not a plain SigV4 request to a URL ending in the key."""
    if signing.get("signature_version") not in ("s3v4", "v4"):
        return None
    parts = urlsplit(str(request.url))
    quoted = quote(key, safe="/~")
    if not parts.path.endswith(f"/{quoted}"):
        return None
    context = request.context.get("signing", {})
    return Target(
        base=f"{parts.scheme}://{parts.netloc}{parts.path[: -len(quoted)]}",
        query=f"?{parts.query}" if parts.query else "",
        region=str(context.get("region") or signing.get("region_name")),
        service=str(context.get("signing_name") or signing.get("signing_name")),
    )


class DirectPuts:
    """PUTs of whole small objects to one bucket, as the client would send them (see module)."""

    def __init__(
        self,
        client: S3Client,
        session: botocore.session.Session,
        target: Target,
        *,
        attempts: int,
        connections: int,
        connect_timeout: float,
        read_timeout: float,
        count: Callable[[], None],
        timestamp: Callable[[str], datetime],
    ) -> None:
        """PUT to ``target`` as ``client`` did (``timestamp`` parses listed times as the
        client's parser does); raise ValueError saying why if anything is unusual (the caller
        then keeps using the client for every PUT and listing)."""
        credentials = session.get_credentials()
        if credentials is None:
            raise ValueError("no credentials")
        parts = urlsplit(target.base)
        if parts.scheme == "https" and (
            session.get_config_variable("ca_bundle") or os.environ.get("REQUESTS_CA_BUNDLE")
        ):  # botocore trusts either (``endpoint.py``); over plain HTTP neither plays a part
            raise ValueError("a custom CA bundle")
        proxies = urllib.request.getproxies()
        if proxies.get(parts.scheme) and not urllib.request.proxy_bypass(parts.hostname or ""):
            raise ValueError("a proxy")
        self._target = target
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._path = parts.path
        #: The bucket's own path, as the client lists it (``/bucket`` path style, else ``/``).
        self._bucket_path = parts.path.rstrip("/") or "/"
        self._credentials = credentials
        self._exceptions = client.exceptions
        model = client.meta.service_model
        self._operations = {name: model.operation_model(name)
                            for name in ("PutObject", "ListObjectsV2")}  # fmt: skip
        self._timestamp = timestamp
        self._parser = ResponseParserFactory().create_parser("rest-xml")
        throttling = ThrottlingErrorDetector(RetryEventAdapter())
        self._policy = RetryPolicy(
            StandardRetryConditions(max_attempts=attempts),
            ExponentialBackoff(service_name="s3", throttling_detector=throttling),
        )
        self._quota = RetryQuotaChecker(RetryQuota(), throttling)
        self._count = count
        https = parts.scheme == "https"
        self._http = Connections(
            target.base,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            size=connections,
            cafile=botocore.httpsession.get_cert_path(True) if https else None,
        )
        self._signer = Signer(self._http.host_header, target.region, target.service)
        self._query = target.query.removeprefix("?")

    def put(
        self, key: str, body: bytes, metadata: Mapping[str, str], conditions: Mapping[str, str]
    ) -> str:
        """PUT ``body`` at ``key`` with user ``metadata`` and ``conditions`` (``IfMatch`` …);
        return its ETag.

        Raises the client's ClientError subclass for a refusal, botocore's connection errors
        for a broken connection (each after the retries the client would make), and
        :class:`Misdirected`.
        """
        headers = {f"x-amz-meta-{name}": value for name, value in metadata.items()}
        headers.update({CONDITION_HEADERS[name]: value for name, value in conditions.items()})
        path = self._path + quote(key, safe="/~")
        reply = self._request("PutObject", "PUT", path, query=self._query, body=body,
                              headers=headers)  # fmt: skip
        return reply.headers.get("etag", "")

    def list_objects(self, **params: Any) -> dict[str, Any]:
        """One ``ListObjectsV2`` page of the bucket with the client's ``params``, answered as
        the client answers (:mod:`.listxml`); raises as :meth:`put` does."""
        query = list_query(params)
        reply = self._request("ListObjectsV2", "GET", self._bucket_path, query=query, body=b"",
                              headers={})  # fmt: skip
        try:
            parsed = parse_listing(reply.body, self._timestamp)
        except (ET.ParseError, ValueError) as exc:
            raise ResponseParserError(f"Unable to parse the listing: {exc}") from None
        parsed["ResponseMetadata"] = _meta(reply)
        return parsed

    def _request(
        self, operation: str, method: str, path: str, *, query: str, body: bytes,
        headers: dict[str, str],
    ) -> Reply:  # fmt: skip
        """Send until answered with success, retrying as the client would; the answer."""
        url = self._origin + path + (f"?{query}" if query else "")
        model = self._operations[operation]
        attempt, request_context = 0, cast("dict[str, Any]", {})
        while True:
            attempt += 1
            reply, caught = self._send(method, url, path, query=query, body=body, headers=headers)
            if reply is not None and 200 <= reply.status < 300:
                # As after-call does: with the request's context (the stubs say otherwise).
                self._quota.release_retry_quota(request_context, reply)  # type: ignore[arg-type]
                return reply
            parsed = self._parse_error(reply, model) if reply is not None else None
            context = RetryContext(
                attempt,
                operation_model=model,
                parsed_response=parsed,
                http_response=_response(url, reply) if reply is not None else None,
                caught_exception=caught,
                request_context=request_context,
            )
            if self._policy.should_retry(context) and self._quota.acquire_retry_quota(context):
                time.sleep(self._policy.compute_retry_delay(context))
                continue
            if caught is not None:
                raise caught
            assert reply is not None and parsed is not None
            code = str(parsed["Error"].get("Code", ""))
            if code in MISDIRECTED_CODES or 300 <= reply.status < 400:
                raise Misdirected(f"{reply.status} {code}")
            error = cast("type[bex.ClientError]", self._exceptions.from_code(code))
            raise error(parsed, operation)  # type: ignore[arg-type]

    def _send(
        self, method: str, url: str, path: str, *, query: str, body: bytes,
        headers: dict[str, str],
    ) -> tuple[Reply | None, Exception | None]:  # fmt: skip
        """One attempt, signed now: the answer, or botocore's exception for what broke."""
        frozen = self._credentials.get_frozen_credentials()
        credentials = Credentials(frozen.access_key or "", frozen.secret_key or "", frozen.token)
        sent = self._signer.sign(credentials, method, path, query=query, headers=headers,
                                 body=body)  # fmt: skip
        sent["User-Agent"] = USER_AGENT
        self._count()
        target = path + (f"?{query}" if query else "")
        try:
            return self._http.request(url, target, method, body, sent), None
        except (bex.HTTPClientError, bex.ConnectionError) as exc:
            return None, exc

    def close(self) -> None:
        """Close the connections kept open (new ones are made as needed)."""
        self._http.close()

    def _parse_error(self, reply: Reply, model: OperationModel) -> dict[str, Any]:
        """The error answer as the client parses it (``Error`` and ``ResponseMetadata``)."""
        shape = model.output_shape
        assert shape is not None  # both operations answer with a shape
        headers = HeadersDict(reply.headers)
        parsed: dict[str, Any] = self._parser.parse(
            {"status_code": reply.status, "headers": headers, "body": reply.body}, shape
        )
        parsed.setdefault("Error", {})
        parsed.setdefault("ResponseMetadata", {}).update(_meta(reply))
        return parsed


def _response(url: str, reply: Reply) -> AWSResponse:
    """``reply`` as botocore's retry checks read an answer."""
    return AWSResponse(url, reply.status, HTTPHeaders.from_pairs(list(reply.headers.items())), None)


def _meta(reply: Reply) -> dict[str, Any]:
    headers = dict(reply.headers)
    return {"HTTPStatusCode": reply.status, "HTTPHeaders": headers,
            "RequestId": headers.get("x-amz-request-id", "")}  # fmt: skip
