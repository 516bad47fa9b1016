"""Where a source's files are and how they are read: a local folder, or an s3:// prefix read by Spark
itself (``s3a://``) or staged by boto3 (docs/design.md §3)."""

from __future__ import annotations

import os

from cdp_spark.io.object_store import ObjectStoreError, is_object_url


def source_location(landing_dir: str, path: str) -> str:
    """A source's path as configured when absolute or a URL, else under the landing directory (which may be
    an ``s3://`` prefix)."""
    if is_object_url(path) or os.path.isabs(path):
        return path
    return f"{landing_dir.rstrip('/')}/{path}" if is_object_url(landing_dir) else os.path.join(landing_dir, path)


def spark_reads_objects(read_mode: str, s3a_loadable: bool) -> bool:
    """``direct`` needs the S3A filesystem (a clear error without it); ``auto`` uses it when it loads."""
    if read_mode == "direct" and not s3a_loadable:
        raise ObjectStoreError("object_store.read_mode is 'direct' but this Spark session has no S3A filesystem "
                               "(hadoop-aws); use read_mode 'stage' or 'auto'")
    return read_mode != "stage" and s3a_loadable
