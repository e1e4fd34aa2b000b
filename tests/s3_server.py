"""A local S3-compatible server for the image storage tests: moto's, on a loopback port.

It speaks S3's HTTP API, so boto3 talks to it exactly as to a bucket elsewhere (signatures,
multipart bodies, errors); credentials are made up, nothing leaves the machine.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


@contextmanager
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Start the server with a new empty bucket; yields the IMAGE_* settings pointing at it.

    moto keeps its buckets in the process's memory, across servers: each start gets a bucket
    of its own name, so no test sees another's objects.
    """
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in {
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    bucket = f"images-{uuid.uuid4().hex[:12]}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(
            Bucket=bucket
        )
        yield {
            "IMAGE_STORAGE": "s3",
            "IMAGE_S3_BUCKET": bucket,
            "IMAGE_S3_ENDPOINT_URL": endpoint,
            "IMAGE_S3_REGION": "us-east-1",
            "IMAGE_S3_PREFIX": "shop/",
        }
    finally:
        server.stop()
