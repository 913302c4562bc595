"""The add-location dialog's fields for an S3 bucket, and how they map to an ``s3://`` spec."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote, urlencode

from app.errors import FormError, SpecError
from app.locations.form.fields import (
    Field,
    FieldValue,
    FormLayout,
    FormStyle,
    FormValues,
    Widget,
    text_of,
)
from app.locations.spec import LocationSpec
from app.logsetup import register_secret

FIELDS = (
    Field("bucket", "Bucket:", required=True),
    Field("prefix", "Prefix:", help="a folder inside the bucket; empty: the whole bucket"),
    Field("endpoint", "Endpoint:", help="empty for AWS; e.g. http://127.0.0.1:9000 for MinIO"),
    Field("region", "Region:"),
    Field("access_key", "Access key:", help="empty: the AWS chain (environment, ~/.aws)"),
    Field("secret", "Secret key:", Widget.PASSWORD),
    Field("profile", "Profile:", help="a profile from ~/.aws, instead of keys"),
)
#: Spec options the form offers; the others (``path_style``) are typed in the URL form.
_OPTIONS = ("endpoint", "region", "profile")


def s3_form(parse: Callable[[str, str, str], LocationSpec]) -> FormLayout:
    """The S3 kind's form; ``parse`` is the kind's URL parser, so one set of rules holds."""

    def to_spec(values: FormValues) -> LocationSpec:
        bucket = text_of(values, "bucket")
        if not bucket:
            raise FormError({"bucket": "enter the bucket's name"})
        if any(c in bucket for c in " /@:?"):
            raise FormError({"bucket": "only the bucket's name: no s3://, key or folder"})
        key, secret = text_of(values, "access_key"), values.get("secret", "")
        secret = secret if isinstance(secret, str) else ""
        cred = f"{quote(key, safe='')}:{quote(secret, safe='')}@" if key else ""
        prefix = quote(text_of(values, "prefix").strip("/"), safe="/")
        query = urlencode([(n, text_of(values, n)) for n in _OPTIONS if text_of(values, n)])
        url = f"s3://{cred}{bucket}/{prefix}" + (f"?{query}" if query else "")
        register_secret(secret)
        try:
            return parse(url, "s3", url)
        except SpecError as exc:
            field = "endpoint" if "endpoint" in exc.message else "bucket"
            raise FormError({field: exc.message}) from exc

    def back(spec: LocationSpec) -> dict[str, FieldValue]:
        values: dict[str, FieldValue] = {n: spec.option(n) for n in _OPTIONS}
        values.update(
            bucket=spec.host,
            prefix=spec.path.strip("/"),
            access_key=spec.user,
            secret=spec.password,
        )
        return values

    return FormLayout(FormStyle.SERVER, FIELDS, to_spec, back)
