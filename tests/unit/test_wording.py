"""Errors keep Python's wording in str() and say the command line's on request."""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest

from versioned_async import _layout, exc
from versioned_async._arguments import download_target
from versioned_async._policy.alias_change import alias_target
from versioned_async._policy.rollout import validate_steps
from versioned_async._wording import BOOTSTRAP, Interface, Words, render


def test_render_joins_text_and_the_interface_s_words() -> None:
    parts = ("give ", Words("version", "--version"), " or ", Words("alias", "--alias"))
    assert render(parts, Interface.PYTHON) == "give version or alias"
    assert render(parts, Interface.CLI) == "give --version or --alias"
    assert render(("plain",), Interface.CLI) == "plain"


def raised(call: Callable[[], object]) -> exc.VersionedError:
    with pytest.raises(exc.VersionedError) as caught:
        call()
    return caught.value


#: (the error, str() as Python callers have always read it, what the command line says)
WORDED = [
    (
        exc.ArtifactNotFoundError("my model"),
        "artifact 'my model' not found: put_artifact() creates it",
        "artifact 'my model' not found: `versioned-async put 'my model' FILE` creates it",
    ),
    (
        exc.AliasNotFoundError("app", "prod"),
        "artifact 'app' has no alias 'prod': put_alias() creates it",
        "artifact 'app' has no alias 'prod': `versioned-async alias set app prod VERSION` "
        "creates it",
    ),
    (
        exc.RepositoryNotFoundError("bucket b does not exist; ", BOOTSTRAP),
        "bucket b does not exist; create the repository with `await repo.bootstrap()`",
        "bucket b does not exist; create the repository with `versioned-async bootstrap`",
    ),
    (
        raised(lambda: _layout.validate_weight(150)),
        "secondary_version_weight must be from 0 to 99 (percent of traffic), got 150",
        "--weight must be from 0 to 99 (percent of traffic), got 150",
    ),
    (
        raised(lambda: _layout.validate_weight(None)),
        "secondary_version_weight must be an int from 0 to 99, not NoneType",
        "--weight must be an int from 0 to 99, not NoneType",
    ),
    (
        raised(lambda: alias_target(1, None, 5)),
        "secondary_version_weight is only allowed with a secondary_version",
        "--weight is only allowed with a --canary",
    ),
    (
        raised(lambda: alias_target(1, 1, 5)),
        "version '1' and secondary_version '1' must differ",
        "version '1' and --canary '1' must differ",
    ),
    (
        raised(lambda: download_target("out", "1", "prod")),
        "give version or alias, not both",
        "give --version or --alias, not both",
    ),
    (
        raised(lambda: validate_steps((10, 50))),
        "steps must end at 100 (all traffic on the new version), got (10, 50)",
        "--steps must end at 100 (all traffic on the new version), got 10,50",
    ),
]


@pytest.mark.parametrize(("err", "python", "cli"), WORDED, ids=lambda v: type(v).__name__)
def test_str_keeps_python_s_words_and_the_cli_gets_its_own(
    err: exc.VersionedError, python: str, cli: str
) -> None:
    assert str(err) == python
    assert err.message_for(Interface.PYTHON) == python
    assert err.message_for(Interface.CLI) == cli
    copy = pickle.loads(pickle.dumps(err))
    assert (str(copy), copy.message_for(Interface.CLI)) == (python, cli)


def test_an_error_without_words_reads_the_same_everywhere() -> None:
    err = exc.ConflictError("alias changed first; retry")
    assert err.message_for(Interface.CLI) == str(err) == "alias changed first; retry"
    full = exc.DiskFullError(28, "/tmp/x", "free space")
    assert full.message_for(Interface.CLI) == str(full)


def test_folder_and_cache_errors_keep_python_s_words_and_name_flags_on_the_cli() -> None:
    missing = exc.FolderNotFoundError("/srv/none")
    assert str(missing) == (
        "the folder /srv/none does not exist: create it first "
        "(download writes one file and creates no folders)"
    )
    assert missing.message_for(Interface.CLI) == (
        "the folder /srv/none does not exist: create it first "
        "(`versioned-async get -o` writes one file and creates no folders)"
    )
    copy = pickle.loads(pickle.dumps(missing))
    assert (str(copy), copy.message_for(Interface.CLI)) == (
        str(missing),
        missing.message_for(Interface.CLI),
    )

    refused = exc.CacheDirectoryError(
        "/c", "/c", "is a symbolic link", Words("use another cache directory", "pass --cache-dir")
    )
    assert str(refused).endswith("; use another cache directory")
    assert refused.advice == "use another cache directory"
    assert refused.message_for(Interface.CLI).endswith("; pass --cache-dir")
    plain = exc.CacheDirectoryError("/c", "/c", "is a symbolic link", "move it")
    assert str(plain).endswith("serves; move it")
    assert plain.message_for(Interface.CLI) == str(plain)
    for err in (refused, plain):
        copy = pickle.loads(pickle.dumps(err))
        assert (str(copy), copy.message_for(Interface.CLI)) == (
            str(err),
            err.message_for(Interface.CLI),
        )
