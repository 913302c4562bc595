"""S3-compatible object storage: a bucket prefix as a location (see ``location.py``)."""

from __future__ import annotations
