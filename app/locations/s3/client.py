"""The boto3 client of one S3 location, and every library error translated at its edge.

* Credentials come from the standard AWS chain (environment, ``~/.aws/credentials`` and
  ``config``, ``profile=``), unless the spec carries an access key and secret (the dialog's
  fields; the secret lives in the keyring and is registered with the log filter).
* botocore retries a throttled, 5xx or dropped request itself (``standard`` mode, four
  attempts with jittered backoff). What still fails starts the server kinds' shared backoff
  (:mod:`app.locations.remote.backoff`, 1 s doubling to 60 s): meanwhile every call raises
  :class:`LocationUnavailable` at once, so the engine shows the location as unavailable and
  the others keep syncing.
* A refused key or secret is :class:`AuthenticationFailed`; a missing bucket a one-line
  :class:`LocationUnavailable` saying to create it. Messages name the endpoint and the
  bucket, never the secret.
* Whole-object PUTs go out as :mod:`.direct` PUTs once the client's own first PUT (the
  probe at connect) showed where and how it sends them: the same errors, about half the CPU.
"""

from __future__ import annotations

import email.utils
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
import botocore.exceptions as bex
import botocore.session
import botocore.utils
from botocore.config import Config

from app.errors import AuthenticationFailed, LocationUnavailable
from app.locations.remote.backoff import Backoff
from app.locations.s3.direct import DirectPuts, Misdirected, target_of
from app.locations.spec import LocationSpec

if TYPE_CHECKING:
    from botocore.awsrequest import AWSRequest
    from mypy_boto3_s3.client import S3Client

log = logging.getLogger(__name__)

T = TypeVar("T")

#: A clock further than this from the server's is reported at connect (mtimes decide who wins
#: a concurrent edit, so a machine whose clock runs ahead wins those it should not).
CLOCK_TOLERANCE_S = 10.0
#: Error codes meaning the key, the secret or the token is refused: retrying will not help.
AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "InvalidToken",
        "ExpiredToken",
        "InvalidClientTokenId",
        "AuthorizationHeaderMalformed",
        "403",
    }
)
#: Error codes for a missing object (a GET says NoSuchKey, a HEAD only 404).
NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
#: What a broken connection or an unreachable endpoint raises inside botocore.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    bex.EndpointConnectionError,
    bex.ConnectionClosedError,
    bex.ReadTimeoutError,
    bex.ConnectTimeoutError,
    bex.ConnectionError,
    bex.ResponseStreamingError,
    OSError,
)

YES = ("yes", "true", "1", "on")
#: Attempts per request, the first included (botocore's ``standard`` retries: 5xx, throttling,
#: broken connections; ``max_attempts`` 3 in botocore's older spelling, which counts retries).
ATTEMPTS = 4
#: Connections kept open to the server (uploads run 8 at a time, listings and HEADs beside).
CONNECTIONS = 16
#: Bodies from this size on go through the client, which sends ``Expect: 100-continue``: a
#: server that refuses a large body (nginx's 1 MiB ``client_max_body_size``, a quota) answers
#: before it is sent, and that one file fails with the server's reason, where a direct PUT
#: would find the connection closed mid-body and retry it as an outage.
DIRECT_MAX = 1024 * 1024


def parse_timestamp(value: str) -> datetime:
    """A response's timestamp: ISO 8601 (every listed ``LastModified``) the fast way.

    botocore's general parser (dateutil) costs more than everything else of a listing; a
    10,000-object poll spent most of its CPU there. Other forms go to botocore's.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return botocore.utils.parse_timestamp(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def error_code(exc: BaseException) -> str:
    """The S3 error code of a ClientError (``NoSuchKey``, ``PreconditionFailed`` …)."""
    if isinstance(exc, bex.ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def status_of(exc: BaseException) -> int:
    """The HTTP status of a ClientError (0 if none)."""
    if isinstance(exc, bex.ClientError):
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))
    return 0


def is_not_found(exc: BaseException) -> bool:
    """True for "no such object"."""
    return error_code(exc) in NOT_FOUND_CODES


def is_precondition_failed(exc: BaseException) -> bool:
    """True for a refused conditional write (``If-Match``/``If-None-Match`` did not hold)."""
    return error_code(exc) in ("PreconditionFailed", "412") or status_of(exc) == 412


class S3Connection:
    """A lazily built boto3 client for one bucket, with FileSync's backoff around it.

    ``requests`` counts the HTTP requests sent (retries included), for tests and benchmarks.
    ``clock_offset_s`` is the server's clock minus ours, measured at :meth:`connect`.
    """

    def __init__(self, spec: LocationSpec, name: str, timeout: float) -> None:
        self.spec = spec
        self.name = name
        self.bucket = spec.host
        self.endpoint = spec.option("endpoint") or None
        self.timeout = timeout
        self.requests = 0
        #: HEAD requests for objects among them (the cost of learning objects' times).
        self.heads = 0
        self.clock_offset_s = 0.0
        #: The location's key prefix, so the connect check lists only its own part.
        self.prefix_hint = ""
        self._client: S3Client | None = None
        self._core: botocore.session.Session | None = None
        #: Whole-object PUTs go out directly (``direct.py``) where they can; tests switch
        #: this off to compare with the client's own PUTs.
        self.direct_puts = True
        self._direct: DirectPuts | None = None
        self._direct_tried = False
        #: The key this thread is PUTting through the client (its target is learned from it).
        self._putting = threading.local()
        self._lock = threading.Lock()
        self._backoff = Backoff()

    @property
    def read_timeout(self) -> float:
        """Seconds to wait for an answer (longer than a connect may take)."""
        return max(self.timeout, 30.0)

    @property
    def where(self) -> str:
        """``bucket 'b' at http://host:port`` for messages."""
        return f"bucket {self.bucket!r} at {self.endpoint or 'AWS S3'}"

    def _build(self) -> S3Client:
        spec = self.spec
        path_style = spec.option("path_style", "yes" if self.endpoint else "no").lower() in YES
        core = botocore.session.get_session()
        core.get_component("response_parser_factory").set_parser_defaults(
            timestamp_parser=parse_timestamp
        )
        try:
            session = boto3.Session(
                botocore_session=core,
                aws_access_key_id=spec.user or None,
                aws_secret_access_key=spec.password or None,
                profile_name=spec.option("profile") or None,
                region_name=spec.option("region") or None,
            )
        except bex.ProfileNotFound as exc:
            raise AuthenticationFailed(str(exc), location=self.name) from None
        config = Config(
            connect_timeout=self.timeout,
            read_timeout=self.read_timeout,
            retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
            s3={"addressing_style": "path" if path_style else "virtual"},
            # Many S3-compatible servers reject the newer default checksum headers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=CONNECTIONS,
        )
        client: S3Client = session.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=session.region_name or "us-east-1",
            config=config,
        )
        client.meta.events.register("before-send.s3", self._count)
        client.meta.events.register("before-send.s3.HeadObject", self._count_head)
        client.meta.events.register("before-sign.s3.PutObject", self._learn_target)
        self._core = core
        return client

    def _count(self, **_: Any) -> None:
        self.requests += 1

    def _count_head(self, **_: Any) -> None:
        self.heads += 1

    def client(self) -> S3Client:
        """The boto3 client (built on first use)."""
        with self._lock:
            if self._client is None:
                self._client = self._build()
            return self._client

    def put_object(
        self,
        what: str,
        key: str,
        body: bytes,
        *,
        metadata: dict[str, str],
        conditions: dict[str, Any],
        path: str | None = None,
    ) -> str:
        """PUT ``body`` at ``key`` as one object (``conditions``: ``IfMatch``/``IfNoneMatch``);
        return its ETag. Sent directly where it can be (``direct.py``: from the second PUT on,
        the first shows how the client sends them), else by the client; either way its errors
        are :meth:`call`'s."""
        direct = self._direct if self.direct_puts and len(body) < DIRECT_MAX else None
        if direct is not None:
            try:
                return self.call(what, lambda _: direct.put(key, body, metadata, conditions), path)
            except Misdirected as exc:
                log.info("%s: uploads go through the client from now on (%s)", self.name, exc)
                with self._lock:
                    self._direct = None
        bucket = self.bucket

        def send(c: S3Client) -> str:
            self._putting.key = key
            try:
                reply = c.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata,
                                     **conditions)  # fmt: skip
            finally:
                self._putting.key = None
            return reply["ETag"]

        return self.call(what, send, path)

    def list_objects(self, client: S3Client, **params: Any) -> Any:
        """One ``ListObjectsV2`` page (the client's ``params``): sent directly where PUTs are
        (``direct.py``), else by ``client``; the same answer and errors either way."""
        direct = self._direct if self.direct_puts else None
        if direct is not None:
            try:
                return direct.list_objects(**params)
            except Misdirected as exc:
                log.info("%s: requests go through the client from now on (%s)", self.name, exc)
                with self._lock:
                    self._direct = None
        return client.list_objects_v2(**params)

    def close(self) -> None:
        """Close the connections of the direct PUTs (the client's pool closes with it)."""
        direct = self._direct
        if direct is not None:
            direct.close()

    def _learn_target(self, request: AWSRequest, **signing: Any) -> None:
        """Set up direct PUTs from the client's own PUT of a file, about to be signed."""
        key = getattr(self._putting, "key", None)
        if key is None or not self.direct_puts:
            return
        with self._lock:
            if self._direct_tried or self._core is None or self._client is None:
                return
            self._direct_tried = True
            target = target_of(request, key, **signing)
            try:
                if target is None:
                    raise ValueError("an unusual request")
                self._direct = DirectPuts(
                    self._client,
                    self._core,
                    target,
                    attempts=ATTEMPTS,
                    connections=CONNECTIONS,
                    connect_timeout=self.timeout,
                    read_timeout=self.read_timeout,
                    count=self._count,
                    timestamp=parse_timestamp,
                )
            except ValueError as exc:
                log.info("%s: uploads go through the client (%s)", self.name, exc)

    def call(self, what: str, action: Callable[[S3Client], T], path: str | None = None) -> T:
        """Run ``action``; translate connection trouble, refusals of the key and a missing
        bucket into FileSync errors. Other ClientErrors (no such key, a failed precondition)
        propagate for the caller, who knows what they mean there."""
        self._backoff.check()
        try:
            result = action(self.client())
        except bex.ClientError as exc:
            failure = self._translate(what, exc, path)
            if failure is None:
                self._recovered()
                raise
            raise self._failed(failure) from None
        except bex.NoCredentialsError:
            raise self._failed(
                AuthenticationFailed(
                    "no S3 credentials: give an access key and secret, set AWS_ACCESS_KEY_ID "
                    "and AWS_SECRET_ACCESS_KEY, or name a profile= from ~/.aws/credentials",
                    location=self.name,
                )
            ) from None
        except CONNECTION_ERRORS as exc:
            detail = str(exc) or type(exc).__name__
            raise self._failed(
                LocationUnavailable(f"{what} failed: {detail}", location=self.name, path=path)
            ) from None
        except bex.BotoCoreError as exc:
            raise LocationUnavailable(f"{what} failed: {exc}", location=self.name) from None
        self._recovered()
        return result

    def _translate(
        self, what: str, exc: bex.ClientError, path: str | None
    ) -> LocationUnavailable | None:
        code, status = error_code(exc), status_of(exc)
        if code in AUTH_CODES:
            who = f"the access key {self.spec.user!r}" if self.spec.user else "the credentials"
            return AuthenticationFailed(
                f"{self.where} refused {who} ({code}: wrong key or secret, or no permission)",
                location=self.name,
            )
        if code == "NoSuchBucket":
            return LocationUnavailable(
                f"{self.where} does not exist; create it first", location=self.name
            )
        if status >= 500 or code in ("SlowDown", "Throttling", "RequestTimeout", "503"):
            return LocationUnavailable(
                f"{what} failed: the server answered {code or status}",
                location=self.name,
                path=path,
            )
        return None

    def _failed(self, failure: LocationUnavailable) -> LocationUnavailable:
        self._backoff.failed(failure)
        return failure

    def _recovered(self) -> None:
        self._backoff.succeeded()

    def connect(self) -> None:
        """Check the bucket answers (one listing), and measure the clock against its ``Date``."""
        sent = time.time()
        reply = self.call(
            "connecting",
            lambda c: c.list_objects_v2(Bucket=self.bucket, MaxKeys=1, Prefix=self.prefix_hint),
        )
        received = time.time()
        date = reply.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
        if not date:
            return
        try:
            server = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return
        # Date has whole seconds: the server's second started somewhere in that second.
        self.clock_offset_s = server + 0.5 - (sent + received) / 2
        if abs(self.clock_offset_s) > CLOCK_TOLERANCE_S:
            log.warning(
                "%s: this computer's clock is %.0f s %s the server's: for edits made on two "
                "machines at once the newer time wins, so set the clock right (NTP)",
                self.name,
                abs(self.clock_offset_s),
                "behind" if self.clock_offset_s > 0 else "ahead of",
            )

    def honours_conditions(self, key: str) -> bool:
        """True if the server refuses a PUT whose ``If-None-Match``/``If-Match`` does not hold
        (tried on the scratch object ``key``, deleted after).

        ``rclone serve s3`` and some older servers ignore both headers and overwrite.
        """
        bucket = self.bucket

        def probe(c: S3Client) -> bool:
            self._putting.key = key  # shows how PUTs go out (direct PUTs start here)
            try:
                c.put_object(Bucket=bucket, Key=key, Body=b"")
            finally:
                self._putting.key = None
            try:
                for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"0"'}):
                    try:
                        c.put_object(Bucket=bucket, Key=key, Body=b"", **condition)  # type: ignore[arg-type]
                    except bex.ClientError as exc:
                        if not is_precondition_failed(exc):
                            return False
                    else:
                        return False
                return True
            finally:
                c.delete_object(Bucket=bucket, Key=key)

        try:
            return self.call("probing conditional writes", probe)
        except bex.ClientError as exc:
            log.warning("%s: cannot write the probe object (%s)", self.name, exc)
            return False
