"""Object storage (S3 and S3-compatible endpoints) through boto3.

Discovery lists the objects under a ``s3://bucket/prefix/*.csv`` pattern; staging downloads an object
to local disk (to a temporary name, then renamed, so a crash never leaves a half file under the final
name). Retries are botocore's *standard* mode, bounded by ``max_attempts``; after them the error names
the endpoint, the bucket/key and what the service answered. Credentials come from the usual AWS chain
(environment, profile, instance role), never from cdp-spark's config.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession

from cdp_spark.config import ObjectStoreSettings

GLOB_CHARS = re.compile(r"[*?\[]")


class ObjectStoreError(RuntimeError):
    """Listing or reading objects failed after the configured retries; the message says where and why."""


@dataclass(frozen=True)
class ObjectRef:
    bucket: str
    key: str
    etag: str
    size: int
    last_modified: datetime

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def is_object_url(path: str) -> bool:
    return path.startswith(("s3://", "s3a://"))


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/a/b*.csv`` -> (``bucket``, ``a/b*.csv``)."""
    match = re.match(r"^s3a?://([^/]+)/?(.*)$", url)
    if not match:
        raise ObjectStoreError(f"'{url}' is not an s3://bucket/key URL")
    return match.group(1), match.group(2)


def s3a_options(settings: ObjectStoreSettings) -> dict[str, str]:
    """Hadoop S3A options that point Spark's own ``s3a://`` reads and writes at the configured S3-compatible
    endpoint (MinIO, moto, Ceph): path-style requests, TLS as the URL says, the region and the attempts.
    Empty for AWS itself, where the cluster's S3A configuration (roles, endpoints) applies unchanged."""
    if not settings.endpoint_url:
        return {}
    return {
        "fs.s3a.endpoint": settings.endpoint_url,
        "fs.s3a.endpoint.region": settings.region,
        "fs.s3a.path.style.access": str(settings.path_style_access).lower(),
        "fs.s3a.connection.ssl.enabled": str(settings.endpoint_url.startswith("https://")).lower(),
        "fs.s3a.attempts.maximum": str(settings.max_attempts),
        "fs.s3a.connection.establish.timeout": f"{int(settings.connect_timeout_s * 1000)}ms",
    }


def configure_s3a(spark: SparkSession, settings: ObjectStoreSettings) -> None:
    """Sets :func:`s3a_options` on the session's Hadoop configuration (read by every S3A filesystem the
    session opens afterwards: landing reads, a lake on ``s3a://``)."""
    options = s3a_options(settings)
    if options:
        hadoop = spark.sparkContext._jsc.hadoopConfiguration()
        for key, value in options.items():
            hadoop.set(key, value)


class ObjectStore:
    def __init__(self, endpoint_url: str | None = None, region: str = "us-east-1", max_attempts: int = 5,
                 connect_timeout: float = 5.0, read_timeout: float = 30.0) -> None:
        import boto3
        from botocore.config import Config

        self.endpoint = endpoint_url or "AWS S3"
        self.max_attempts = max_attempts
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region,
            config=Config(retries={"total_max_attempts": max_attempts, "mode": "standard"},
                          connect_timeout=connect_timeout, read_timeout=read_timeout))

    def _fail(self, action: str, exc: Exception) -> ObjectStoreError:
        from botocore.exceptions import ClientError, EndpointConnectionError

        if isinstance(exc, EndpointConnectionError):
            return ObjectStoreError(f"cannot reach the S3 endpoint {self.endpoint} ({action}) after "
                                    f"{self.max_attempts} attempts: {exc}")
        if isinstance(exc, ClientError):
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            return ObjectStoreError(f"S3 {action} at {self.endpoint} failed after {attempts} attempt(s): "
                                    f"HTTP {status} {error.get('Code', '')} {error.get('Message', '')}".rstrip())
        return ObjectStoreError(f"S3 {action} at {self.endpoint} failed: {type(exc).__name__}: {exc}")

    def list(self, url_pattern: str) -> list[ObjectRef]:
        """Objects whose key matches the pattern's glob, sorted by key."""
        bucket, key_glob = split_url(url_pattern)
        glob_at = GLOB_CHARS.search(key_glob)
        prefix = key_glob[: glob_at.start()] if glob_at else key_glob
        refs = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    key = item["Key"]
                    if key.endswith("/") or not fnmatch.fnmatchcase(key, key_glob or "*"):
                        continue
                    refs.append(ObjectRef(bucket, key, str(item["ETag"]).strip('"'), int(item["Size"]),
                                          item["LastModified"]))
        except Exception as exc:
            raise self._fail(f"listing s3://{bucket}/{prefix}", exc) from None
        return sorted(refs, key=lambda r: r.key)

    def put(self, url: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        bucket, key = split_url(url)
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        except Exception as exc:
            raise self._fail(f"writing s3://{bucket}/{key}", exc) from None

    def upload(self, local_path: str, url: str) -> None:
        bucket, key = split_url(url)
        try:
            self.client.upload_file(local_path, bucket, key)
        except Exception as exc:
            raise self._fail(f"writing s3://{bucket}/{key}", exc) from None

    def head(self, bucket: str, key: str) -> dict[str, Any]:
        try:
            return dict(self.client.head_object(Bucket=bucket, Key=key))
        except Exception as exc:
            raise self._fail(f"reading s3://{bucket}/{key}", exc) from None

    def read_head(self, ref: ObjectRef, length: int) -> bytes:
        """The first ``length`` bytes of the object version ``ref`` names (a ranged GET)."""
        try:
            response = self.client.get_object(Bucket=ref.bucket, Key=ref.key, IfMatch=f'"{ref.etag}"',
                                              Range=f"bytes=0-{max(length, 1) - 1}")
            return bytes(response["Body"].read())
        except Exception as exc:
            raise self._fail(f"reading {ref.uri}", exc) from None

    @contextmanager
    def staged(self, ref: ObjectRef, staging_dir: str) -> Iterator[str]:
        """The object version ``ref`` names as a local file (:meth:`stage`), removed when the block ends."""
        local = self.stage(ref, staging_dir)
        try:
            yield local
        finally:
            os.remove(local)

    def stage(self, ref: ObjectRef, staging_dir: str) -> str:
        """Downloads the object version ``ref`` names to ``staging_dir``; returns the local path. Fails if the
        object changed since it was listed (its ETag differs)."""
        digest = hashlib.sha256(f"{ref.bucket}/{ref.key}@{ref.etag}".encode()).hexdigest()[:16]
        final = Path(staging_dir) / ref.bucket / f"{digest}-{Path(ref.key).name}"
        final.parent.mkdir(parents=True, exist_ok=True)
        partial = final.with_name(final.name + ".part")
        try:
            body = self.client.get_object(Bucket=ref.bucket, Key=ref.key, IfMatch=f'"{ref.etag}"')["Body"]
            with partial.open("wb") as handle:
                for chunk in iter(lambda: body.read(1 << 20), b""):
                    handle.write(chunk)
        except Exception as exc:
            partial.unlink(missing_ok=True)
            raise self._fail(f"reading {ref.uri}", exc) from None
        if partial.stat().st_size != ref.size:
            partial.unlink(missing_ok=True)
            raise ObjectStoreError(f"{ref.uri}: downloaded {partial.stat().st_size} bytes, listed {ref.size}")
        os.replace(partial, final)
        return str(final)


def open_object_store(settings: ObjectStoreSettings) -> ObjectStore:
    return ObjectStore(settings.endpoint_url, settings.region, settings.max_attempts, settings.connect_timeout_s,
                       settings.read_timeout_s)


def text_exists(path: str, settings: ObjectStoreSettings) -> bool:
    """Whether a file written by :func:`write_text` is at ``path`` (a local path or an s3:// URL)."""
    if not is_object_url(path):
        return Path(path).is_file()
    bucket, key = split_url(path)
    return any(ref.key == key for ref in open_object_store(settings).list(f"s3://{bucket}/{key}"))


def write_text(path: str, text: str, settings: ObjectStoreSettings, content_type: str = "text/html") -> str:
    """Writes a small text file (a report) to a local path or an s3:// URL; returns where it went. A local
    file is written to a temporary name first and renamed, so a reader never sees half a file."""
    if is_object_url(path):
        store = open_object_store(settings)
        store.put(path, text.encode("utf-8"), f"{content_type}; charset=utf-8")
        return path
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
    return str(target.resolve())


def write_through_spark(spark: SparkSession, url: str, write: Callable[[str], None],
                        settings: ObjectStoreSettings, staging_dir: str) -> list[tuple[str, int]]:
    """Runs ``write(folder)`` (a Spark ``DataFrameWriter`` call) so that its part files land in the folder
    ``url``, and returns each file's URL (named as ``url`` names it) and size; Spark's helper files
    (``_SUCCESS``, ``.crc``) are removed. The executors write straight to the target: a local folder, or an
    ``s3://`` one through S3A (``s3a://``). Only a session without S3A (local mode without hadoop-aws)
    writes to ``staging_dir`` on the driver and uploads with boto3."""
    from cdp_spark.io.hadoop import delete, list_files
    from cdp_spark.session import s3a_available

    remote = is_object_url(url)
    if remote and not s3a_available(spark):
        Path(staging_dir).mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix="cdp-write-", dir=staging_dir))
        try:
            write(str(staged))
            parts = sorted(p for p in staged.iterdir() if not p.name.startswith(("_", ".")))
            store = open_object_store(settings)
            for part in parts:
                store.upload(str(part), f"{url}/{part.name}")
            return [(f"{url}/{part.name}", part.stat().st_size) for part in parts]
        finally:
            shutil.rmtree(staged, ignore_errors=True)
    target = "s3a://" + url.split("://", 1)[1] if remote else url
    write(target)
    written = []
    for path, size in list_files(spark, target):
        name = path.rsplit("/", 1)[-1]
        if name.startswith(("_", ".")):
            delete(spark, path)
        else:
            written.append((f"{url}/{name}" if remote else str(Path(url, name).resolve()), size))
    return written
