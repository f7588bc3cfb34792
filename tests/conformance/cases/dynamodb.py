"""DynamoDB: moto's standalone server, an emulator (tests/servers/moto.py)."""

from __future__ import annotations

import pytest

from websession import create_dynamodb_session_storage

from ...servers.moto import MOTO_CLIENT_OPTIONS, MOTO_REGION
from ..harness import Options
from . import StoreCase, ttl_option


def make_dynamodb(request: pytest.FixtureRequest, options: Options):
    return create_dynamodb_session_storage(
        # A table per test: scans and counts see only the test's own items.
        table=request.getfixturevalue("dynamodb_test_table"),
        # The run's shared boto3 client for the sync door; the async door opens its own.
        client=request.getfixturevalue("dynamodb_client"),
        endpoint_url=request.getfixturevalue("moto_endpoint"),
        region=MOTO_REGION,
        client_options=MOTO_CLIENT_OPTIONS,
        cookie=options.cookie,
        clock=options.clock,
        rolling=options.rolling,
        save_uninitialized=options.save_uninitialized,
        **ttl_option(options, "default_ttl"),
    )


# DynamoDB's TTL deletes late, so expiry is checked on read with the store's clock: the fake
# clock applies.
CASES = [StoreCase("dynamodb", make_dynamodb)]
