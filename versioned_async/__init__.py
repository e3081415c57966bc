"""versioned_async: an asyncio SDK for versioned binary artifacts in S3.

Two layouts, those of the `versioned` 1.0 library, so both libraries can work
on one repository at the same time: :class:`Repository` (content in S3,
metadata in one DynamoDB table) and :class:`S3OnlyRepository` (everything in
one S3 bucket). Code that takes either types it as :class:`ArtifactRepository`,
the API they share.
"""

from . import exc
from ._base import ArtifactRepository
from ._layout import LATEST
from ._version import __version__
from .cache import CacheStats, LocalCache
from .models import Alias, AliasChange, AliasHistoryPage, Artifact, Hold, RolloutResult
from .repository import Repository
from .s3_only import S3OnlyRepository
from .transfer_config import TransferConfig

__all__ = [
    "LATEST",
    "Alias",
    "AliasChange",
    "AliasHistoryPage",
    "Artifact",
    "ArtifactRepository",
    "CacheStats",
    "Hold",
    "LocalCache",
    "Repository",
    "RolloutResult",
    "S3OnlyRepository",
    "TransferConfig",
    "__version__",
    "exc",
]
