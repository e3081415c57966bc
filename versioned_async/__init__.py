"""versioned_async: an asyncio SDK for versioned binary artifacts in S3 + DynamoDB.

The repository layout is that of the `versioned` 1.0 library, so both can work
on one repository at the same time.
"""

from . import exc
from ._layout import LATEST
from ._version import __version__
from .cache import CacheStats, LocalCache
from .models import Alias, AliasChange, AliasHistoryPage, Artifact, Hold, RolloutResult
from .repository import Repository

__all__ = [
    "LATEST",
    "Alias",
    "AliasChange",
    "AliasHistoryPage",
    "Artifact",
    "CacheStats",
    "Hold",
    "LocalCache",
    "Repository",
    "RolloutResult",
    "__version__",
    "exc",
]
