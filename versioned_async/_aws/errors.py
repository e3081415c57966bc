"""botocore's errors become the library's, here and nowhere else.

Whatever botocore, aiohttp or asyncio raise inside :func:`aws_errors` leaves
as a :mod:`versioned_async.exc` error that says what to do, and the
endpoint's credentials never reach a message (:func:`scrub`). Expected
outcomes are not errors: the adapters read the few codes that are answers (a
missing object with :func:`unless_missing`, a failed condition, a cancelled
transaction with :func:`cancellation_error`) and return them as values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

import aiohttp
import botocore.exceptions as bce

from .._redact import redact_text
from .._wording import BOOTSTRAP, Words
from ..exc import (
    BackendError,
    BackendUnavailableError,
    InvalidArgumentError,
    RepositoryNotFoundError,
)

__all__ = ["aws_errors", "cancellation_error", "error_code", "scrub", "unless_missing"]

_T = TypeVar("_T")

#: codes that mean AWS is failing or overloaded, still after botocore's retries
_UNAVAILABLE_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "InternalServerError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "RequestTimeoutException",
        "TransactionInProgressException",
    }
)
#: botocore's own network failures: the endpoint could not be reached or answered
_NETWORK_ERRORS = (
    bce.EndpointConnectionError,
    bce.ConnectTimeoutError,
    bce.ReadTimeoutError,
    bce.ConnectionClosedError,
    bce.HTTPClientError,
    bce.ConnectionError,
)
#: what aiohttp and asyncio raise when the network fails outside botocore's own
#: handling (a body read after botocore returned, a connection reset mid-stream)
_TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, ConnectionError)


def error_code(err: bce.ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


async def unless_missing(request: Awaitable[_T], codes: Collection[str]) -> _T | None:
    """``request``'s answer, or ``None`` when AWS answers with one of ``codes`` that
    what it asked about does not exist: an answer for the caller, not an error."""
    try:
        return await request
    except bce.ClientError as err:
        if error_code(err) in codes:
            return None
        raise


def scrub(err: BaseException) -> BaseException:
    """Mask URL credentials in the messages of ``err`` and of what it chains, in place.

    botocore puts the endpoint URL, with any ``user:password@``, into its
    connection errors; these are chained to ours and printed in tracebacks and
    ``log.exception`` output, so their text is masked too (see ``_redact``).
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(isinstance(arg, str) and "@" in arg for arg in current.args):
            current.args = tuple(
                redact_text(arg) if isinstance(arg, str) else arg for arg in current.args
            )
        kwargs = getattr(current, "kwargs", None)  # botocore formats str() from these
        if isinstance(kwargs, dict):
            for key, value in kwargs.items():
                if isinstance(value, str) and "@" in value:
                    kwargs[key] = redact_text(value)
        current = current.__cause__ or current.__context__
    return err


#: cancellation reasons that are a race with another transaction: read again, retry
_RACE_REASONS = frozenset({"None", "ConditionalCheckFailed", "TransactionConflict"})
#: cancellation reasons that are throttling, still there after botocore's retries
_THROTTLE_REASONS = frozenset(
    {"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
)


def cancellation_error(
    what: str, codes: Sequence[str], messages: Sequence[str] = ()
) -> BackendError | None:
    """What a cancelled transaction (one reason code per action) means for the caller.

    ``None`` when every reason is ``None``/``ConditionalCheckFailed``: the
    caller reads the codes. A ``TransactionConflict`` (another transaction on
    the same items in flight) is a race, the one cancellation worth retrying:
    ``BackendUnavailableError`` coded ``TransactionCanceledException``.
    Throttling is ``BackendUnavailableError`` with its own code (botocore has
    already retried). Anything else (``ValidationError``,
    ``ItemCollectionSizeLimitExceeded``, ...) will not go away by retrying:
    ``BackendError`` with that code. Nothing of a cancelled transaction applied.
    """
    if all(c in ("None", "ConditionalCheckFailed") for c in codes):
        return None
    padded = [*messages, *([""] * len(codes))]
    told = "; ".join(
        f"action {n + 1}: {code}" + (f" ({padded[n]})" if padded[n] else "")
        for n, code in enumerate(codes)
        if code != "None"
    )
    if all(c in _RACE_REASONS for c in codes):
        return BackendUnavailableError(
            f"{what}: cancelled by a concurrent transaction on the same items ({told}); "
            "nothing was changed: retry",
            code="TransactionCanceledException",
            operation="TransactWriteItems",
        )
    refused = next(c for c in codes if c not in _RACE_REASONS)
    if refused in _THROTTLE_REASONS:
        return BackendUnavailableError(
            f"{what}: DynamoDB kept throttling the transaction ({told}); nothing was "
            "changed: retry later",
            code=refused,
            operation="TransactWriteItems",
        )
    return BackendError(
        f"{what}: DynamoDB refused the transaction ({told}); nothing was changed, and "
        "retrying will not help: fix the item it names",
        code=refused,
        operation="TransactWriteItems",
    )


@contextmanager
def aws_errors(what: str) -> Iterator[None]:
    """Translate botocore errors raised inside into the library's error tree.

    Network failures that reach us from aiohttp or asyncio directly (a body
    cut while it is read) are ``BackendUnavailableError`` like botocore's own;
    messages never carry the credentials of an endpoint URL (``what`` is masked
    when an error is raised, not on every call: most calls succeed).
    """
    try:
        yield
    except bce.ClientError as err:
        what = redact_text(what)
        code = error_code(err)
        op = getattr(err, "operation_name", None)
        status = err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in ("NoSuchBucket", "ResourceNotFoundException"):
            raise RepositoryNotFoundError(
                f"{what}: {err.response['Error'].get('Message', code)}; ", BOOTSTRAP
            ) from err
        if code in ("BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"):
            raise BackendError(
                f"{what}: S3 refused the content, which did not match its checksum "
                "(corrupted on the way, or the file changed while it was uploaded); "
                "nothing was stored; retry",
                code=code,
                operation=op,
            ) from err
        if code in _UNAVAILABLE_CODES or status >= 500:
            raise BackendUnavailableError(
                f"{what}: AWS kept failing with {code or status} after retries; retry later",
                code=code,
                operation=op,
            ) from err
        raise BackendError(f"{what}: {err}", code=code, operation=op) from err
    except _NETWORK_ERRORS as err:
        raise BackendUnavailableError(
            f"{redact_text(what)}: could not reach AWS ({scrub(err)}); "
            "check the endpoint and network, then retry"
        ) from err
    except _TRANSPORT_ERRORS as err:
        raise BackendUnavailableError(
            f"{redact_text(what)}: the connection failed "
            f"({type(err).__name__}: {redact_text(str(err))}); retry later"
        ) from scrub(err)
    except bce.NoRegionError as err:
        raise InvalidArgumentError(
            f"{redact_text(what)}: no AWS region is configured; ",
            Words(
                "pass aws_region= to the repository (--region on the command line)", "pass --region"
            ),
            " or set AWS_DEFAULT_REGION",
        ) from err
    except bce.NoCredentialsError as err:
        raise BackendError(
            f"{redact_text(what)}: no AWS credentials found; configure them as for the AWS CLI "
            "(environment variables, ~/.aws, or an instance role)"
        ) from err
    except bce.BotoCoreError as err:
        raise BackendError(f"{redact_text(what)}: {scrub(err)}") from err
