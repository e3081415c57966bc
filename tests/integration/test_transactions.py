"""TransactWriteItems as the library relies on it, checked on whichever engine runs.

On moto this pins the service behaviour ``put_alias`` depends on; on ministack
(tests/engines.py) it holds a second, independent implementation to the same
expectations.
"""

from __future__ import annotations

from typing import Any

import botocore.exceptions
import pytest

from tests.conftest import TABLE


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


async def _table(dynamodb: Any) -> None:
    await dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    await dynamodb.put_item(TableName=TABLE, Item={**_key("a", "1"), "n": {"N": "1"}})


async def _items(dynamodb: Any) -> dict[tuple[str, str], dict[str, Any]]:
    found = await dynamodb.scan(TableName=TABLE, ConsistentRead=True)
    return {(i["pk"]["S"], i["sk"]["S"]): i for i in found["Items"]}


async def test_a_transaction_applies_every_action(dynamodb: Any) -> None:
    await _table(dynamodb)
    await dynamodb.transact_write_items(
        TransactItems=[
            {
                "ConditionCheck": {
                    "TableName": TABLE,
                    "Key": _key("a", "1"),
                    "ConditionExpression": "n = :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
            {"Put": {"TableName": TABLE, "Item": {**_key("a", "2"), "n": {"N": "2"}}}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": _key("b", "1"),
                    "UpdateExpression": "SET #n = :three",
                    "ExpressionAttributeNames": {"#n": "n"},
                    "ExpressionAttributeValues": {":three": {"N": "3"}},
                }
            },
        ]
    )
    items = await _items(dynamodb)
    assert {k: v["n"]["N"] for k, v in items.items()} == {
        ("a", "1"): "1",
        ("a", "2"): "2",
        ("b", "1"): "3",
    }


async def test_a_failed_condition_cancels_everything_and_names_the_action(dynamodb: Any) -> None:
    await _table(dynamodb)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        await dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {**_key("a", "2"), "n": {"N": "2"}}}},
                {"Delete": {"TableName": TABLE, "Key": _key("a", "1")}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": _key("missing", "1"),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    err = caught.value.response
    assert err["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in err["CancellationReasons"]] == [
        "None",
        "None",
        "ConditionalCheckFailed",
    ]
    assert list(await _items(dynamodb)) == [("a", "1")]  # nothing written, nothing deleted


async def test_two_actions_on_one_item_are_refused(dynamodb: Any) -> None:
    await _table(dynamodb)
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        await dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": TABLE, "Item": {**_key("a", "1"), "n": {"N": "5"}}}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": _key("a", "1"),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    assert "multiple operations on one item" in str(caught.value)
    assert (await _items(dynamodb))[("a", "1")]["n"] == {"N": "1"}
