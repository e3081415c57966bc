"""What a cancelled TransactWriteItems means: a race to retry, or an error as it is."""

from __future__ import annotations

from versioned_async._aws.errors import cancellation_error
from versioned_async.exc import BackendError, BackendUnavailableError


def test_failed_conditions_are_for_the_caller_to_read() -> None:
    assert cancellation_error("put", ["None", "ConditionalCheckFailed"]) is None
    assert cancellation_error("put", ["ConditionalCheckFailed"]) is None


def test_a_conflicting_transaction_is_a_race_to_retry() -> None:
    err = cancellation_error("put", ["None", "TransactionConflict", "None"])
    assert isinstance(err, BackendUnavailableError)
    assert err.code == "TransactionCanceledException"
    assert "action 2: TransactionConflict" in str(err)


def test_a_validation_error_is_raised_as_what_it_is() -> None:
    err = cancellation_error(
        "put alias 'prod' of 'app'",
        ["ValidationError", "None", "None"],
        ["An operand in the update expression has an incorrect data type", "", ""],
    )
    assert type(err) is BackendError
    assert (err.code, err.operation) == ("ValidationError", "TransactWriteItems")
    assert str(err).startswith("put alias 'prod' of 'app': DynamoDB refused the transaction")
    assert "action 1: ValidationError (An operand" in str(err)


def test_a_permanent_reason_wins_over_a_conflict_beside_it() -> None:
    err = cancellation_error("put", ["TransactionConflict", "ItemCollectionSizeLimitExceeded"])
    assert type(err) is BackendError
    assert err.code == "ItemCollectionSizeLimitExceeded"


def test_throttling_after_botocores_retries_is_unavailable_with_its_code() -> None:
    for code in ("ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"):
        err = cancellation_error("put", ["None", code])
        assert isinstance(err, BackendUnavailableError)
        assert err.code == code
