"""A LocalCache's settings: one mutable record its parts read at the moment they use it.

Why one shared record rather than values copied into each part: a service tunes a
cache it already passed to its repositories (``cache.ttl = 0`` while debugging,
``cache.verify_on_read = True`` after a disk scare), and the change must reach
the read policy, the content store and the eviction alike, at once. Each setting
is checked on assignment exactly as the constructor checks it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, overload

import attrs

from ..exc import InvalidArgumentError, InvalidArgumentTypeError

__all__ = ["CacheSettings", "Setting"]

_T = TypeVar("_T")


def _ttl(value: object) -> float:
    """Checked before it is converted: ``float("30")`` would pass a str."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentTypeError(f"ttl must be seconds (a number), not {value!r}")
    if not value >= 0:
        raise InvalidArgumentError(f"ttl must be >= 0 seconds, got {value}")
    return float(value)


def _size_limit(_settings: object, _attribute: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidArgumentError(f"size_limit must be a positive int of bytes, got {value!r}")


def _flag(_settings: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, bool):
        raise InvalidArgumentTypeError(f"{attribute.name} must be True or False, not {value!r}")


def _callable(_settings: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not callable(value):
        raise InvalidArgumentTypeError(
            f"{attribute.name} must be a function returning seconds, not {value!r}"
        )


@attrs.define(on_setattr=attrs.setters.pipe(attrs.setters.convert, attrs.setters.validate))
class CacheSettings:
    """What :class:`~versioned_async.cache.LocalCache` was made with, or set to since
    (see its docstring for what each one means)."""

    ttl: float = attrs.field(converter=_ttl)
    size_limit: int = attrs.field(validator=_size_limit)
    stale_if_error: bool = attrs.field(validator=_flag)
    clock: Callable[[], float] = attrs.field(validator=_callable)
    verify_on_read: bool = attrs.field(validator=_flag)


class _HasSettings(Protocol):
    _settings: CacheSettings


class Setting(Generic[_T]):
    """A :class:`CacheSettings` field as an attribute of its owner (``cache.ttl``):
    read from, and assigned (checked) to, the owner's ``_settings``."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, owner: None, kind: type) -> Setting[_T]: ...

    @overload
    def __get__(self, owner: _HasSettings, kind: type | None = None) -> _T: ...

    def __get__(self, owner: _HasSettings | None, kind: type | None = None) -> Setting[_T] | _T:
        if owner is None:
            return self
        value: _T = getattr(owner._settings, self._name)
        return value

    def __set__(self, owner: _HasSettings, value: _T) -> None:
        setattr(owner._settings, self._name, value)
