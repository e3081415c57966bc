"""Items in one DynamoDB table: the item operations the table layout needs.

:class:`Table` knows DynamoDB's API and nothing of artifacts beyond keys and
items. Strongly consistent reads throughout; lookups of one loop turn share a
BatchGetItem (:mod:`.._coalesce`). A failed condition is a return value, a
cancelled transaction a list of reasons (:func:`.errors.cancellation_error`
tells a race from a refusal); everything else leaves as a library error.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import botocore.exceptions as bce

from .. import _codec, _pacing
from .._coalesce import Coalescer
from ..exc import BackendUnavailableError
from .clients import AwsClients
from .errors import aws_errors, cancellation_error, error_code, unless_missing

__all__ = ["BATCH_GET_LIMIT", "Item", "Table"]

log = logging.getLogger("versioned_async")

#: an item as DynamoDB's API carries it: attribute name -> AttributeValue
Item = dict[str, dict[str, Any]]

#: BatchGetItem takes at most 100 keys
BATCH_GET_LIMIT = 100
_BATCH_GET_TRIES = 5


#: what a table asks before its operations: may they go on (raises when not)
Gate = Callable[["Table"], Awaitable[object]]


class Table:
    """The items of one table, through the repository's DynamoDB client (created on
    first use).

    ``gate``, when given, is awaited before every operation but those passed
    ``checked=False`` and :meth:`ensure_table`: the catalog's check that the
    table serves its repository (it raises when not). It is called on every
    operation and must remember its answer; it reads through ``checked=False``.
    """

    def __init__(self, clients: AwsClients, name: str, gate: Gate | None = None) -> None:
        self._clients = clients
        self._client: Any = None
        self.name = name
        self._gate = gate
        self._item_lookups = Coalescer(self._get_items, limit=BATCH_GET_LIMIT)

    async def _checked(self) -> None:
        if self._gate is not None:
            await self._gate(self)

    async def _dynamodb(self) -> Any:
        """The DynamoDB client, asked of the repository's clients once and then kept."""
        if self._client is None:
            self._client = await self._clients.client("dynamodb")
        return self._client

    async def get_item(self, pk: str, sk: str, *, checked: bool = True) -> Item | None:
        """The item (strongly consistent), or ``None``.

        Lookups issued in the same event-loop turn share BatchGetItem requests
        (see :mod:`.._coalesce`): a service starting 100 artifacts at once sends
        one request per step instead of 100. A lone lookup is a GetItem.
        ``checked=False``: without the gate.
        """
        if checked:
            await self._checked()
        with aws_errors(f"GetItem {self.name} {pk!r}/{sk!r}"):
            return await self._item_lookups((pk, sk))

    async def _get_items(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        if len(keys) == 1:
            [(pk, sk)] = keys
            item = await self._get_one(pk, sk)
            return {} if item is None else {(pk, sk): item}
        return await self._get_many(keys)

    async def _get_one(self, pk: str, sk: str) -> Item | None:
        dynamodb = await self._dynamodb()
        resp = await dynamodb.get_item(
            TableName=self.name,
            Key=_codec.key(pk, sk),
            ConsistentRead=True,
        )
        item: Item | None = resp.get("Item")
        return item

    async def _get_many(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Item]:
        """Up to 100 items by key in one BatchGetItem, retrying unprocessed keys."""
        dynamodb = await self._dynamodb()
        pending = [_codec.key(pk, sk) for pk, sk in keys]
        found: dict[tuple[str, str], Item] = {}
        for attempt in range(_BATCH_GET_TRIES):
            resp = await dynamodb.batch_get_item(
                RequestItems={self.name: {"Keys": pending, "ConsistentRead": True}}
            )
            for item in resp.get("Responses", {}).get(self.name, ()):
                found[_codec.key_of(item)] = item
            pending = resp.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
            if not pending:
                return found
            await _pacing.pause(random.uniform(0, 0.05 * 2**attempt))  # jitter
        for key in pending:  # still throttled: one GetItem each, with botocore's retries
            pk, sk = _codec.key_of(key)
            item = await self._get_one(pk, sk)
            if item is not None:
                found[pk, sk] = item
        return found

    async def put_item(
        self,
        item: Item,
        condition: str | None = None,
        values: Item | None = None,
        *,
        checked: bool = True,
    ) -> bool:
        """Write ``item``; ``False`` when ``condition`` did not hold (nothing written).
        ``checked=False``: without the gate."""
        if checked:
            await self._checked()
        kwargs = _expression_kwargs(condition, values)
        return await self._conditional(
            f"PutItem {self.name} {_codec.key_text(item)}",
            lambda dynamodb: dynamodb.put_item(TableName=self.name, Item=item, **kwargs),
        )

    async def update_item(
        self,
        pk: str,
        sk: str,
        update: str,
        condition: str | None = None,
        values: Item | None = None,
        names: Mapping[str, str] | None = None,
    ) -> bool:
        """Apply ``update``; ``False`` when ``condition`` did not hold (nothing written)."""
        await self._checked()
        kwargs = {"UpdateExpression": update, **_expression_kwargs(condition, values, names)}
        return await self._conditional(
            f"UpdateItem {self.name} {pk!r}/{sk!r}",
            lambda dynamodb: dynamodb.update_item(
                TableName=self.name, Key=_codec.key(pk, sk), **kwargs
            ),
        )

    async def delete_item(
        self, pk: str, sk: str, condition: str | None = None, values: Item | None = None
    ) -> bool:
        """Delete an item; ``False`` when ``condition`` did not hold (nothing deleted)."""
        await self._checked()
        kwargs = _expression_kwargs(condition, values)
        return await self._conditional(
            f"DeleteItem {self.name} {pk!r}/{sk!r}",
            lambda dynamodb: dynamodb.delete_item(
                TableName=self.name, Key=_codec.key(pk, sk), **kwargs
            ),
        )

    async def transact_write(self, what: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
        """TransactWriteItems; returns the cancellation reason code of each action
        (``"None"`` for those that were fine) when the transaction was cancelled,
        or ``[]`` when it was applied."""
        await self._checked()
        for entry in items:
            for action in entry.values():
                action.setdefault("TableName", self.name)
        dynamodb = await self._dynamodb()
        with aws_errors(what):
            try:
                await dynamodb.transact_write_items(TransactItems=list(items))
            except bce.ClientError as err:
                if error_code(err) != "TransactionCanceledException":
                    raise
                reasons = err.response.get("CancellationReasons") or []
                codes = [str(r.get("Code", "None")) for r in reasons]
                refused = cancellation_error(
                    what, codes, [str(r.get("Message") or "") for r in reasons]
                )
                if refused is not None:
                    raise refused from err
                return codes or ["ConditionalCheckFailed"]
        return []

    async def query(
        self,
        pk: str,
        *,
        descending: bool = False,
        limit: int | None = None,
        sk_between: tuple[str, str] | None = None,
        page_size: int | None = None,
        filter: str | None = None,
        filter_values: Item | None = None,
        filter_names: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Item]:
        """Every item of partition ``pk`` (or the first ``limit``), following pages.

        ``filter`` is a FilterExpression (with its own ``:values`` and
        ``#names``; it may not use ``pk``/``sk``). DynamoDB applies it after
        reading: every item of the partition is still read and paid for, only
        fewer are returned. ``limit`` then counts the items that passed it.
        """
        await self._checked()
        condition = "pk = :pk"
        values: Item = {":pk": _codec.string(pk), **(filter_values or {})}
        if sk_between is not None:
            condition += " AND sk BETWEEN :lo AND :hi"
            values[":lo"] = _codec.string(sk_between[0])
            values[":hi"] = _codec.string(sk_between[1])
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not descending,
            "ConsistentRead": True,
        }
        if filter is not None:
            kwargs["FilterExpression"] = filter
        if filter_names:
            kwargs["ExpressionAttributeNames"] = dict(filter_names)
        if page_size is not None or (limit is not None and filter is None):
            kwargs["Limit"] = page_size or limit
        returned = 0
        pages = self._pages("query", kwargs, f"Query {self.name} pk={pk!r}")
        async with aclosing(pages):  # at the limit: no request for the next page
            async for item in pages:
                yield item
                returned += 1
                if limit is not None and returned >= limit:
                    return

    async def scan(
        self,
        filter: str,
        values: Item | None = None,
        names: Mapping[str, str] | None = None,
    ) -> AsyncIterator[Item]:
        """Every item of the table that passes ``filter``, following pages.

        A Scan reads the whole table (every item of every partition, 1 MB a
        page) and is billed for all of it; the filter only trims what comes
        back. Strongly consistent, like :meth:`query`.
        """
        await self._checked()
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "FilterExpression": filter,
            "ConsistentRead": True,
        }
        if values:
            kwargs["ExpressionAttributeValues"] = values
        if names:
            kwargs["ExpressionAttributeNames"] = dict(names)
        async for item in self._pages("scan", kwargs, f"Scan {self.name}"):
            yield item

    async def scan_keys(self) -> AsyncIterator[Item]:
        """The key of every item in the table."""
        await self._checked()
        keys = {"TableName": self.name, "ProjectionExpression": "pk, sk"}
        async for item in self._pages("scan", keys, f"Scan {self.name}"):
            yield item

    async def _pages(
        self, operation: str, kwargs: dict[str, Any], what: str
    ) -> AsyncGenerator[Item, None]:
        """Every item a Query or Scan (``operation``) with ``kwargs`` returns, page
        after page, each page asked for when the one before has been consumed."""
        call = getattr(await self._dynamodb(), operation)
        with aws_errors(what):
            while True:
                resp = await call(**kwargs)
                for item in resp.get("Items", ()):
                    yield item
                if "LastEvaluatedKey" not in resp:
                    return
                kwargs["ExclusiveStartKey"] = resp["LastEvaluatedKey"]

    async def batch_delete(self, keys: Sequence[Item]) -> None:
        """Delete items by key, 25 per request, retrying what DynamoDB left unprocessed."""
        await self._checked()
        dynamodb = await self._dynamodb()
        for start in range(0, len(keys), 25):
            pending: list[dict[str, Any]] = [
                {"DeleteRequest": {"Key": {"pk": k["pk"], "sk": k["sk"]}}}
                for k in keys[start : start + 25]
            ]
            with aws_errors(f"BatchWriteItem {self.name}"):
                for _attempt in range(10):
                    resp = await dynamodb.batch_write_item(RequestItems={self.name: pending})
                    pending = resp.get("UnprocessedItems", {}).get(self.name, [])
                    if not pending:
                        break
                else:
                    raise BackendUnavailableError(
                        f"DynamoDB left {len(pending)} deletes unprocessed after 10 tries; retry"
                    )

    async def ensure_table(
        self, read_capacity_units: int | None, write_capacity_units: int | None
    ) -> bool:
        """Create the table unless it exists and wait until it is active."""
        dynamodb = await self._dynamodb()
        with aws_errors(f"create table {self.name}"):
            described = dynamodb.describe_table(TableName=self.name)
            if await unless_missing(described, ("ResourceNotFoundException",)) is not None:
                return False
            kwargs: dict[str, Any] = {
                "TableName": self.name,
                "KeySchema": [
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": [
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
            }
            if read_capacity_units is None:
                kwargs["BillingMode"] = "PAY_PER_REQUEST"
            else:
                kwargs["BillingMode"] = "PROVISIONED"
                kwargs["ProvisionedThroughput"] = {
                    "ReadCapacityUnits": read_capacity_units,
                    "WriteCapacityUnits": write_capacity_units,
                }
            try:
                await dynamodb.create_table(**kwargs)
            except bce.ClientError as err:
                if error_code(err) != "ResourceInUseException":
                    raise
            waiter = dynamodb.get_waiter("table_exists")
            await waiter.wait(TableName=self.name, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
        log.info("created DynamoDB table %s", self.name)
        return True

    async def _conditional(self, what: str, call: Callable[[Any], Awaitable[Any]]) -> bool:
        """``call`` (a write, given the client); ``False`` when its condition did not hold."""
        dynamodb = await self._dynamodb()
        with aws_errors(what):
            try:
                await call(dynamodb)
            except bce.ClientError as err:
                if error_code(err) == "ConditionalCheckFailedException":
                    return False
                raise
        return True


def _expression_kwargs(
    condition: str | None, values: Item | None, names: Mapping[str, str] | None = None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if condition is not None:
        kwargs["ConditionExpression"] = condition
    if values:
        kwargs["ExpressionAttributeValues"] = values
    if names:
        kwargs["ExpressionAttributeNames"] = dict(names)
    return kwargs
