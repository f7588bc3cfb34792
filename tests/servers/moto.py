"""moto's standalone server (``moto_server``), the DynamoDB emulator the tests run against.

It is an emulator, not DynamoDB: it implements the API (conditions, UpdateItem expressions,
the 400 KB item limit) but not DynamoDB's number normalisation or its late TTL deletions.
The session fixture starts it on a free loopback port and stops it at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

#: Credentials moto accepts; nothing leaves the machine.
MOTO_CLIENT_OPTIONS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
MOTO_REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(port: int, process: subprocess.Popen[bytes], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:<port>`` of a moto server started for this test run."""
    executable = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
    if not os.path.exists(executable):
        pytest.fail("moto_server is not installed; install the dev extra (pip install 'moto[server]')")
    port = _free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
    process = subprocess.Popen(
        [executable, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=log
    )
    try:
        if not _wait_for(port, process, 30):
            log.seek(0)
            pytest.fail(
                f"moto_server did not start on port {port}: {log.read().decode(errors='replace')[-2000:]}"
            )
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="session")
def dynamodb_client(moto_endpoint: str) -> Iterator[Any]:
    """A boto3 DynamoDB client for the moto server."""
    import boto3

    client = boto3.session.Session().client(
        "dynamodb", region_name=MOTO_REGION, endpoint_url=moto_endpoint, **MOTO_CLIENT_OPTIONS
    )
    yield client
    client.close()


@pytest.fixture(scope="session")
def dynamodb_table(dynamodb_client: Any) -> str:
    """A table in the arc layout (``_idx`` key, TTL on ``_ttl``) shared by the test run."""
    from websession.stores.dynamodb import create_dynamodb_table

    create_dynamodb_table(dynamodb_client, "websession-test")
    return "websession-test"


@pytest.fixture
def dynamodb_test_table(dynamodb_client: Any) -> Iterator[str]:
    """A table of one test's own (arc layout), deleted afterwards, so a test that scans or
    counts sees only its own items."""
    import secrets

    from websession.stores.dynamodb import create_dynamodb_table

    name = f"websession-test-{secrets.token_hex(4)}"
    create_dynamodb_table(dynamodb_client, name)
    yield name
    dynamodb_client.delete_table(TableName=name)
