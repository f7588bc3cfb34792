"""DynamoDB: moto's standalone server, an emulator (tests/servers/moto.py)."""

from __future__ import annotations

import secrets

import pytest

from websession import create_dynamodb_session_storage
from websession.stores.dynamodb import create_dynamodb_table

from ...servers.moto import MOTO_CLIENT_OPTIONS, MOTO_REGION
from ..harness import Options
from . import StoreCase


def make_dynamodb(request: pytest.FixtureRequest, options: Options):
    client = request.getfixturevalue("dynamodb_client")
    # A table per test: the maintenance tests count and scan every item in the table.
    table = f"websession-{secrets.token_hex(4)}"
    create_dynamodb_table(client, table)
    request.addfinalizer(lambda: client.delete_table(TableName=table))
    return create_dynamodb_session_storage(
        table=table,
        # The run's shared boto3 client for the sync door; the async door opens its own.
        client=request.getfixturevalue("dynamodb_client"),
        endpoint_url=request.getfixturevalue("moto_endpoint"),
        region=MOTO_REGION,
        client_options=MOTO_CLIENT_OPTIONS,
        cookie=options.cookie,
        clock=options.clock,
        rolling=options.rolling,
        save_uninitialized=options.save_uninitialized,
    )


# DynamoDB's TTL deletes late, so expiry is checked on read with the store's clock: the fake
# clock applies.
CASES = [StoreCase("dynamodb", make_dynamodb)]
