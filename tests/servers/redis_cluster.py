"""A real Redis Cluster of three masters on loopback, started once per test session.

Each master is a redis-server with ``--cluster-enabled yes`` on a free port (its cluster bus
on port + 10000); ``redis-cli --cluster create`` then spreads the 16384 slots over them.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest

from .redis import RedisServer, free_port

MASTERS = 3


@pytest.fixture(scope="session")
def redis_cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis+cluster://127.0.0.1:<port>`` of a fresh 3-master cluster; torn down at the end."""
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.fail("redis-cli is not installed; `python3 scripts/test.py` installs redis-server")
    root = tmp_path_factory.mktemp("redis-cluster")
    servers: list[RedisServer] = []
    try:
        for index in range(MASTERS):
            server = RedisServer(
                pathlib.Path(root, f"node{index}"),
                free_port(plus=10000),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            )
            server.start()
            servers.append(server)
        nodes = [f"127.0.0.1:{server.port}" for server in servers]
        created = subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            pytest.fail(f"redis-cli --cluster create failed:\n{created.stdout}\n{created.stderr}")
        _wait_until_ok(servers)
        yield f"redis+cluster://127.0.0.1:{servers[0].port}"
    finally:
        for server in servers:
            server.stop()


def _wait_until_ok(servers: list[RedisServer]) -> None:
    """Every node agrees the cluster is up and all slots are served."""
    deadline = time.monotonic() + 30
    while True:
        states = []
        for server in servers:
            client = server.client()
            try:
                info = client.execute_command("CLUSTER", "INFO")
            finally:
                client.close()
            text = info.decode() if isinstance(info, bytes) else str(info)
            states.append("cluster_state:ok" in text and "cluster_slots_ok:16384" in text)
        if all(states):
            return
        if time.monotonic() > deadline:
            pytest.fail("the Redis Cluster did not reach cluster_state:ok within 30 s")
        time.sleep(0.1)
