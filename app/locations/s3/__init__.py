"""S3-compatible object storage: a bucket prefix as a location (see ``location.py``)."""

from __future__ import annotations

from app.locations.s3.location import S3Location

__all__ = ["S3Location"]
