"""Where image files live: a directory (default) or an S3-compatible bucket.

Both answer the same three calls with keys like `products/12/3f2a…-320.jpg`. Keys are
content-hashed and written once, so `put` of an existing key just writes the same bytes again.

Settings (README): IMAGE_STORAGE=local|s3; IMAGE_UPLOAD_DIR (local, default instance/uploads);
IMAGE_S3_BUCKET, IMAGE_S3_ENDPOINT_URL (MinIO, Ceph, R2, … or empty for AWS), IMAGE_S3_REGION,
IMAGE_S3_PREFIX. S3 credentials come from boto3's usual sources (AWS_ACCESS_KEY_ID, …).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from flask import Flask, current_app

_EXTENSION = "marketplace.images.storage"


class ImageStorage(Protocol):
    def put(self, key: str, data: bytes, content_type: str) -> None: ...

    def get(self, key: str) -> bytes | None:
        """The file's bytes, or None when there is no such key."""

    def delete(self, key: str) -> None:
        """Remove the key; a missing key is not an error."""


def _safe_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a storage key: {key!r}")
    return key


@dataclass
class LocalStorage:
    root: Path

    def path_of(self, key: str) -> Path:
        return self.root / _safe_key(key)

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path_of(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written beside and renamed: a reader never sees half a file.
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self.path_of(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def delete(self, key: str) -> None:
        self.path_of(key).unlink(missing_ok=True)


@dataclass
class S3Storage:
    bucket: str
    client: Any
    prefix: str = ""

    def _key(self, key: str) -> str:
        return f"{self.prefix}{_safe_key(key)}"

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=self._key(key),
            Body=data,
            ContentType=content_type,
            CacheControl="public, max-age=31536000, immutable",
        )

    def get(self, key: str) -> bytes | None:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self.client.exceptions.NoSuchKey:
            return None
        return answer["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))


def build(config: dict[str, Any]) -> ImageStorage:
    """The storage the settings name.

    :raises RuntimeError: IMAGE_STORAGE is neither local nor s3, or s3 without a bucket.
    """
    kind = config["IMAGE_STORAGE"]
    if kind == "local":
        return LocalStorage(Path(config["IMAGE_UPLOAD_DIR"]))
    if kind == "s3":
        if not config["IMAGE_S3_BUCKET"]:
            raise RuntimeError("IMAGE_STORAGE=s3 needs IMAGE_S3_BUCKET")
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=config["IMAGE_S3_ENDPOINT_URL"] or None,
            region_name=config["IMAGE_S3_REGION"] or None,
        )
        return S3Storage(config["IMAGE_S3_BUCKET"], client, config["IMAGE_S3_PREFIX"])
    raise RuntimeError(f"IMAGE_STORAGE must be local or s3, not {kind!r}")


def init_app(app: Flask) -> None:
    app.extensions[_EXTENSION] = build(app.config)


def storage() -> ImageStorage:
    return current_app.extensions[_EXTENSION]
