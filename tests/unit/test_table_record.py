"""The table record (issue 17): which repository a table serves, as pure decisions, its
wire form, its one write, and the error that refuses another repository."""

from __future__ import annotations

import json
import pickle
from datetime import datetime, timezone

import pytest

from versioned_async import _codec, exc
from versioned_async._codec import TableRecord, put_item_args, structure_table_record, to_item
from versioned_async._policy.table_record import Verdict, new_record, normal_prefix, verdict
from versioned_async._table_writes import ClaimTable
from versioned_async._wording import Interface

WHEN = datetime(2026, 12, 4, 18, 30, 0, 123456, tzinfo=timezone.utc)


def recorded(bucket: str = "bkt", prefix: str = "artifacts") -> TableRecord:
    return new_record(bucket, prefix, WHEN, "bootstrap")


# -- the decision ----------------------------------------------------------------------


def test_a_table_without_a_record_is_unrecorded() -> None:
    assert verdict(None, "bkt", "artifacts") is Verdict.UNRECORDED


@pytest.mark.parametrize("prefix", ["artifacts", "/artifacts", "artifacts/", "/artifacts/"])
def test_the_record_of_the_same_bucket_and_prefix_serves_it(prefix: str) -> None:
    assert verdict(recorded(), "bkt", prefix) is Verdict.SERVES


@pytest.mark.parametrize(
    ("bucket", "prefix"),
    [("other-bucket", "artifacts"), ("bkt", "team-b"), ("bkt", ""), ("bkt", "artifacts/x")],
)
def test_another_bucket_or_prefix_is_another_repository(bucket: str, prefix: str) -> None:
    assert verdict(recorded(), bucket, prefix) is Verdict.OTHER


def test_the_empty_prefix_is_a_prefix_of_its_own() -> None:
    assert verdict(recorded(prefix="/"), "bkt", "") is Verdict.SERVES
    assert verdict(recorded(prefix=""), "bkt", "artifacts") is Verdict.OTHER


def test_a_new_record_keeps_the_prefix_as_keys_are_written() -> None:
    record = new_record("bkt", "/team/models/", WHEN, "adopt_table")
    assert (record.pk, record.sk) == ("__table", "serves")
    assert (record.s3_bucket, record.s3_prefix, record.recorded_by) == (
        "bkt",
        "team/models",
        "adopt_table",
    )
    assert normal_prefix("/a/b/") == "a/b"


# -- the wire format -------------------------------------------------------------------


def test_the_record_on_the_wire() -> None:
    assert to_item(recorded()) == {
        "pk": {"S": "__table"},
        "sk": {"S": "serves"},
        "s3_bucket": {"S": "bkt"},
        "s3_prefix": {"S": "artifacts"},
        "update_at": {"S": "2026-12-04T18:30:00.123456+0000"},
        "recorded_by": {"S": "bootstrap"},
    }


def test_the_record_round_trips_and_an_empty_prefix_is_written() -> None:
    record = recorded(prefix="")
    assert to_item(record)["s3_prefix"] == {"S": ""}
    assert structure_table_record(to_item(record)) == record


def test_a_record_that_is_not_one_is_a_backend_error() -> None:
    with pytest.raises(exc.BackendError, match="not a valid TableRecord"):
        structure_table_record({"pk": {"S": "__table"}, "sk": {"S": "serves"}})


def test_the_claim_is_written_only_where_no_record_is() -> None:
    args = put_item_args(ClaimTable(recorded()))
    assert json.dumps(args) == json.dumps(
        {
            "item": to_item(recorded()),
            "condition": "attribute_not_exists(pk)",
            "values": None,
        }
    )
    [transact] = _codec.transact_items([ClaimTable(recorded())])
    assert transact == {
        "Put": {"Item": to_item(recorded()), "ConditionExpression": "attribute_not_exists(pk)"}
    }


# -- the error -------------------------------------------------------------------------


def mismatch() -> exc.TableMismatchError:
    return exc.TableMismatchError("versioned-artifacts", "bkt", "artifacts", "other", "")


def test_the_mismatch_is_an_invalid_argument() -> None:
    assert issubclass(exc.TableMismatchError, exc.InvalidArgumentError)
    assert isinstance(mismatch(), ValueError)


def test_the_mismatch_says_what_the_table_serves_what_was_given_and_what_to_do() -> None:
    err = mismatch()
    assert str(err) == (
        "DynamoDB table 'versioned-artifacts' serves the repository in s3://bkt/artifacts, "
        "not this one in s3://other/: nothing was written, and nothing the table holds was "
        "returned; give Repository the table's own s3_bucket='bkt' and "
        "s3_prefix='artifacts', or a table of its own with dynamodb_table_name=... "
        "(bootstrap() creates it)"
    )
    assert err.message_for(Interface.CLI) == (
        "DynamoDB table 'versioned-artifacts' serves the repository in s3://bkt/artifacts, "
        "not this one in s3://other/: nothing was written, and nothing the table holds was "
        "returned; pass --bucket bkt --prefix artifacts, or a table of its own with "
        "--table NAME (`versioned-async bootstrap` creates it)"
    )
    assert (err.table, err.served_bucket, err.served_prefix, err.bucket, err.prefix) == (
        "versioned-artifacts",
        "bkt",
        "artifacts",
        "other",
        "",
    )


def test_the_cli_advice_quotes_an_empty_prefix_for_the_shell() -> None:
    err = exc.TableMismatchError("t", "bkt", "", "bkt", "team-b")
    assert "pass --bucket bkt --prefix ''," in err.message_for(Interface.CLI)


def test_the_mismatch_survives_a_pickle_round_trip() -> None:
    copy = pickle.loads(pickle.dumps(mismatch()))
    assert type(copy) is exc.TableMismatchError
    assert (str(copy), copy.message_for(Interface.CLI)) == (
        str(mismatch()),
        mismatch().message_for(Interface.CLI),
    )
