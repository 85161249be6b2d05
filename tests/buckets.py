"""A local S3 server for tests of bucket inputs and outputs (moto's server on 127.0.0.1, no network, no mocks).

`s3_server()` starts moto's S3 server on a free port of 127.0.0.1 and stops it afterwards; `s3_bucket(endpoint,
monkeypatch)` points fsspec's `s3://` (s3fs, through botocore's `AWS_ENDPOINT_URL`) at it, with throwaway
credentials, and returns an `s3fs.S3FileSystem` holding an empty bucket `BUCKET`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

BUCKET = "paloma-test"


@contextlib.contextmanager
def s3_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server._server.server_port}"
    finally:
        server.stop()


def s3_bucket(endpoint: str, monkeypatch) -> object:
    import s3fs

    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem()
    if fs.exists(BUCKET):
        fs.rm(BUCKET, recursive=True)
    fs.mkdir(BUCKET)
    return fs
