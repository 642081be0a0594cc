"""An S3-compatible server on this machine for the object-store tests: moto in server mode, s3fs as the client.

The real S3 protocol over HTTP on 127.0.0.1 (a random port): what curate
sends is what it would send to AWS, MinIO or GCS's S3 API. The endpoint and
test credentials go into the environment, so child processes (the CLI runs
a test kills) and the Ray workers they start reach the same server.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True)
class S3:
    endpoint: str
    env: dict[str, str]

    def bucket(self) -> str:
        """A new, empty bucket; returns ``s3://name``."""
        import s3fs

        name = f"curate-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(endpoint_url=self.endpoint).mkdir(name)
        return f"s3://{name}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3]:
    pytest.importorskip("s3fs")
    import fsspec
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per HTTP request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "FSSPEC_S3_ENDPOINT_URL": endpoint, "NO_PROXY": "127.0.0.1,localhost"}
    before = {k: os.environ.get(k) for k in env}
    conf_before = fsspec.config.conf.get("s3")
    os.environ.update(env)
    fsspec.config.conf["s3"] = {**(conf_before or {}), "endpoint_url": endpoint}  # fsspec read the environment at import
    try:
        yield S3(endpoint, env)
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if conf_before is None:
            fsspec.config.conf.pop("s3", None)
        else:
            fsspec.config.conf["s3"] = conf_before
        server.stop()
