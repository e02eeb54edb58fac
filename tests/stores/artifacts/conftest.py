"""Blob stores on every back end: a local folder, fsspec memory, and S3 on a local moto server."""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.stores.artifacts import open_blob_store
from shipyard.stores.artifacts.base import BlobStore
from shipyard.stores.artifacts.content import ContentStore
from shipyard.stores.artifacts.fsspec_store import FsspecBlobStore

BUCKET = "shipyard-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_bucket() -> Iterator[str]:
    """A bucket on a moto S3 server on loopback; the AWS variables point every client at it."""
    try:
        import boto3
        import s3fs  # noqa: F401 - the S3 back end needs it; a missing one must fail, not skip
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.fail(f"the S3 contract tests need moto[server], boto3 and s3fs: {exc}")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("AWS_ACCESS_KEY_ID", "testing")
            env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            env.setenv("AWS_DEFAULT_REGION", "us-east-1")
            env.setenv("AWS_ENDPOINT_URL", endpoint)
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
            try:
                client.create_bucket(Bucket=BUCKET)
            finally:
                client.close()
            yield BUCKET
    finally:
        server.stop()


@pytest.fixture
def s3_url(s3_bucket: str) -> str:
    """A fresh prefix in the moto bucket, so tests never see each other's keys."""
    return f"s3://{s3_bucket}/{uuid.uuid4().hex}"


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh fsspec memory folder, removed afterwards."""
    url = f"memory://shipyard-{uuid.uuid4().hex}"
    yield url
    store = FsspecBlobStore(url)
    with contextlib.suppress(FileNotFoundError):
        store.fs.rm(store.root, recursive=True)


@pytest.fixture(params=["local", "memory", pytest.param("s3", marks=pytest.mark.s3)])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    """The same empty blob store on each back end, opened by URI like the app does."""
    if request.param == "local":
        uri = str(tmp_path / "store")
    else:
        uri = request.getfixturevalue(f"{request.param}_url")
    store = open_blob_store(uri)
    yield store
    store.close()


@pytest.fixture
def content_store(blob_store: BlobStore) -> ContentStore:
    """Content addressing on top of each back end."""
    return ContentStore(blob_store)
