"""Fixtures the S3 test modules share (test_s3, test_s3_groups, test_s3_restart): each test
runs once on each real server.

A module that means another kind of server by ``server`` defines its own fixture of that name,
which takes precedence over these.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.locations.s3.location import S3Location
from tests.s3_server import S3Server


@pytest.fixture(params=["rclone", "moto"])
def server(request: pytest.FixtureRequest, s3_servers: dict[str, S3Server]) -> S3Server:
    """Each real S3 server in turn: rclone serve s3, then moto."""
    return s3_servers[request.param]


@pytest.fixture
def bucket(server: S3Server) -> str:
    """A fresh, empty bucket on that server."""
    return server.new_bucket()


@pytest.fixture
def loc(server: S3Server, bucket: str) -> Iterator[S3Location]:
    """An opened S3 location on the ``root`` prefix of that bucket, with no history."""
    location = server.location(bucket, "root")
    assert isinstance(location, S3Location)
    location.adopt(has_history=False)
    yield location
    location.close()
