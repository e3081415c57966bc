"""Traces and metrics through the OpenTelemetry API: the only module that imports it.

Why this shape: `opentelemetry-api` is an optional extra, so the rest of the
package never imports it. It calls three things here, each a no-op unless a
span of ours is being recorded:

- :func:`traced`, a decorator on the façade's public methods: one span per call,
  named ``versioned.<method>`` (as botocore's instrumentation names its spans
  ``S3.GetObject``: the system, then the operation), with the artifact, alias,
  version, bytes and layout as attributes, and an exception recorded with the
  status ERROR;
- :func:`annotate` and :func:`report_outcome`, which the read path calls where
  it learns the version an alias routed to, or decides the cache outcome (hit,
  revalidated, stale, miss): they set attributes on the operation of the current
  context, found through a context variable, so the cache knows no tracer;
- :func:`cache_metrics`, a subscriber to a :class:`~versioned_async.LocalCache`'s
  events that counts them on OpenTelemetry instruments.

The API is never imported by this package: an application that configures an
SDK has imported it, so it is looked up in :data:`sys.modules` at each call
(about 50 ns). Without it, or with the API but no SDK (the global provider is
still the API's proxy), a call costs one check and no span is made.
"""

from __future__ import annotations

import contextvars
import enum
import functools
import inspect
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, Protocol, TypeVar

from ._version import __version__

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

    from .cache.events import CacheEvent

__all__ = [
    "ALIAS_NAME",
    "ARTIFACT_NAME",
    "ARTIFACT_VERSION",
    "BACKEND",
    "CACHE_OUTCOME",
    "CONTENT_SIZE",
    "CacheOutcome",
    "Tracing",
    "annotate",
    "cache_metrics",
    "report_outcome",
    "traced",
    "traced_as",
    "tracing",
]

#: the instrumentation scope: the distribution that emits the telemetry
SCOPE = "versioned_async"

# -- attribute names: one namespace, the layout's name (`versioned` 1.0 shares it) ------------
ARTIFACT_NAME = "versioned.artifact.name"
ARTIFACT_VERSION = "versioned.artifact.version"
ALIAS_NAME = "versioned.alias.name"
CACHE_OUTCOME = "versioned.cache.outcome"
CONTENT_SIZE = "versioned.content.size"
BACKEND = "versioned.backend"
#: where an integrity failure was found: content from S3, or a cached file
INTEGRITY_SOURCE = "versioned.integrity.source"

#: a public method's parameters that become attributes, by parameter name
_PARAMETER_ATTRIBUTES = {"name": ARTIFACT_NAME, "alias": ALIAS_NAME, "version": ARTIFACT_VERSION}


class CacheOutcome(enum.Enum):
    """How the cache served a read, worst last: an operation that read several things
    (an alias, then content) reports the worst of them."""

    HIT = "hit"  # within the TTL: no request
    REVALIDATED = "revalidated"  # older than the TTL, asked AWS, unchanged or cached
    STALE = "stale"  # AWS unreachable, served older than the TTL
    MISS = "miss"  # downloaded (or looked up for the first time)


_RANK = {outcome: rank for rank, outcome in enumerate(CacheOutcome)}


# -- one operation: its span, and what the read path reports to it ---------------------------


class _Operation:
    """A public call being traced: its span, and the worst cache outcome reported."""

    __slots__ = ("name", "outcome", "owner", "span")

    def __init__(self, name: str, owner: object, span: Span) -> None:
        self.name, self.owner, self.span = name, owner, span
        self.outcome: CacheOutcome | None = None


_V = TypeVar("_V")

#: the operation of the current context; tasks and threads started in it inherit it
_current: contextvars.ContextVar[_Operation | None] = contextvars.ContextVar(
    "versioned_async_operation", default=None
)


def annotate(key: str, value: _V, shown: Callable[[_V], str | int] | None = None) -> None:
    """Set an attribute on the current operation's span, if one is recorded: ``value``,
    or ``shown(value)`` (computed only then)."""
    operation = _current.get()
    if operation is not None:
        operation.span.set_attribute(key, value if shown is None else shown(value))  # type: ignore[arg-type]


def report_outcome(outcome: CacheOutcome) -> None:
    """Report how the cache served a read to the current operation, if one is recorded;
    the worst outcome of the operation stays."""
    operation = _current.get()
    if operation is not None and (
        operation.outcome is None or _RANK[outcome] > _RANK[operation.outcome]
    ):
        operation.outcome = outcome
        operation.span.set_attribute(CACHE_OUTCOME, outcome.value)


# -- tracing: a protocol, a no-op and the OpenTelemetry implementation ------------------------


class Tracing(Protocol):
    """Where a repository's operation spans go."""

    def provider(self) -> TracerProvider | None:
        """Where spans are recorded now; ``None``: nowhere (no SDK set), calls untouched."""
        ...

    def operation(
        self, name: str, owner: object, attributes: dict[str, str | int]
    ) -> AbstractContextManager[_Operation]:
        """The span of one call, current while it runs."""
        ...


class _OpenTelemetryTracing:
    """Spans through a tracer provider: the one given, else the global one looked up at
    each call (so a provider set after the repository was made is used)."""

    def __init__(self, provider: TracerProvider | None) -> None:
        self._given = provider
        self._provider: object = None
        self._tracer: Any = None
        #: a provider the API makes from the environment, at its first lookup
        self._from_environment = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ

    def provider(self) -> TracerProvider | None:
        if self._given is not None:
            return self._given
        trace: Any = sys.modules.get("opentelemetry.trace")  # loaded by the application
        if trace is None:
            return None
        # the global as set_tracer_provider() leaves it (set once; None until then), read
        # without get_tracer_provider()'s look at the environment, which costs 2 us a call;
        # that look is what makes a provider named by OTEL_PYTHON_TRACER_PROVIDER
        provider: TracerProvider | None = getattr(trace, "_TRACER_PROVIDER", None)
        if provider is None:
            if not self._from_environment and hasattr(trace, "_TRACER_PROVIDER"):
                return None
            provider = trace.get_tracer_provider()
        # the API's proxy (no SDK set yet) or its no-op: nothing would be recorded
        if isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            return None
        return provider

    @contextmanager
    def operation(
        self, name: str, owner: object, attributes: dict[str, str | int]
    ) -> Iterator[_Operation]:
        from opentelemetry.trace import SpanKind  # noqa: PLC0415 - the optional API

        provider = self.provider()
        if provider is not self._provider:
            assert provider is not None
            self._tracer = provider.get_tracer(SCOPE, __version__)
            self._provider = provider
        with self._tracer.start_as_current_span(
            name, kind=SpanKind.INTERNAL, attributes=attributes
        ) as span:
            operation = _Operation(name, owner, span)
            token = _current.set(operation)
            try:
                yield operation
            except Exception as err:
                span.set_attribute("error.type", type(err).__qualname__)
                raise
            finally:
                _current.reset(token)


def tracing(provider: TracerProvider | None = None) -> Tracing:
    """The tracing of a repository: through ``provider``, else the global provider."""
    return _OpenTelemetryTracing(provider)


_S = TypeVar("_S")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def _result_attributes(result: object) -> dict[str, str | int]:
    """What a call's result adds to its span: bytes read, the version written or read."""
    if isinstance(result, bytes):
        return {CONTENT_SIZE: len(result)}
    if isinstance(result, Path):
        try:
            return {CONTENT_SIZE: result.stat().st_size}
        except OSError:
            return {}
    version = getattr(result, "version", None)
    if isinstance(version, int | str) and not isinstance(result, list | tuple):
        found: dict[str, str | int] = {ARTIFACT_VERSION: str(version)}
        size = getattr(result, "size", None)
        if isinstance(size, int):
            found[CONTENT_SIZE] = size
        return found
    return {}


def traced(
    method: Callable[Concatenate[_S, _P], Awaitable[_R]],
) -> Callable[Concatenate[_S, _P], Awaitable[_R]]:
    """Trace a public ``async`` method of the façade: one span per call, named
    ``versioned.<method name>``. Untouched (one check) when nothing is recorded.

    A call that another traced call of the same name and repository makes (an
    override calling ``super()``) is part of that span, not a second one.
    """
    return traced_as(method.__name__)(method)


def traced_as(
    operation: str,
) -> Callable[
    [Callable[Concatenate[_S, _P], Awaitable[_R]]], Callable[Concatenate[_S, _P], Awaitable[_R]]
]:
    """:func:`traced`, the span named ``versioned.<operation>``: for a method that
    serves another public one (``Artifact.get_content``)."""

    def decorate(
        method: Callable[Concatenate[_S, _P], Awaitable[_R]],
    ) -> Callable[Concatenate[_S, _P], Awaitable[_R]]:
        return _traced(f"versioned.{operation}", method)

    return decorate


def _traced(
    name: str, method: Callable[Concatenate[_S, _P], Awaitable[_R]]
) -> Callable[Concatenate[_S, _P], Awaitable[_R]]:
    parameters = list(inspect.signature(method).parameters)[1:]  # after self
    positions = [
        (index, parameter, _PARAMETER_ATTRIBUTES[parameter])
        for index, parameter in enumerate(parameters)
        if parameter in _PARAMETER_ATTRIBUTES
    ]

    async def call(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        telemetry: Tracing = self._tracing  # type: ignore[attr-defined]
        if telemetry.provider() is None:
            return await method(self, *args, **kwargs)
        current = _current.get()
        if current is not None and current.owner is self and current.name == name:
            return await method(self, *args, **kwargs)
        attributes: dict[str, str | int] = {BACKEND: self._backend}  # type: ignore[attr-defined]
        for index, parameter, attribute in positions:
            value = args[index] if index < len(args) else kwargs.get(parameter)
            if isinstance(value, str | int) and not isinstance(value, bool):
                attributes[attribute] = str(value) if attribute == ARTIFACT_VERSION else value
        with telemetry.operation(name, self, attributes) as operation:
            result = await method(self, *args, **kwargs)
            for key, value in _result_attributes(result).items():
                operation.span.set_attribute(key, value)
            return result

    functools.update_wrapper(call, method)
    return call


async def traced_poll(
    telemetry: Tracing, owner: object, attributes: Mapping[str, str], read: Awaitable[_R]
) -> _R:
    """One poll of ``watch_alias`` as its own short span, ``versioned.watch_alias``: a
    watch lasts as long as the service, so each poll is a trace of its own."""
    if telemetry.provider() is None:
        return await read
    with telemetry.operation("versioned.watch_alias", owner, dict(attributes)):
        return await read


# -- metrics: a LocalCache's events on OpenTelemetry counters ---------------------------------

#: (instrument name, unit, description) of each counter
METRICS = {
    "hits": ("versioned.cache.hits", "{hit}", "Content served from a cached file."),
    "misses": ("versioned.cache.misses", "{miss}", "Content downloaded into the cache."),
    "stale_serves": (
        "versioned.cache.stale_serves",
        "{serve}",
        "Lookups older than the TTL served because AWS could not be reached.",
    ),
    "evictions": ("versioned.cache.evictions", "{file}", "Cached content files evicted."),
    "downloaded": ("versioned.cache.downloaded", "By", "Bytes downloaded from S3 by the cache."),
    "integrity_failures": (
        "versioned.integrity.failures",
        "{failure}",
        "Content that did not hash to its recorded sha256: from S3, or a cached file.",
    ),
}


class _CacheMetrics:
    """A :class:`~versioned_async.LocalCache` subscriber: each event on its counter.

    With no provider given, the instruments are made from the global provider at the
    first event after the application imported the metrics API (before: nothing is
    counted, one check per event); instruments made from the API's proxy start
    counting when an SDK is set."""

    def __init__(self, provider: MeterProvider | None) -> None:
        self._given = provider
        self._counters: dict[str, Any] | None = None
        self._dispatch: dict[type, Callable[[Any], None]] = {}
        if provider is not None:
            self._make(provider)

    def _make(self, provider: MeterProvider) -> None:
        from .cache import events  # noqa: PLC0415 - the cache package imports this module

        meter = provider.get_meter(SCOPE, __version__)
        counters = {
            key: meter.create_counter(name, unit=unit, description=description)
            for key, (name, unit, description) in METRICS.items()
        }
        self._counters = counters
        fail_s3 = {INTEGRITY_SOURCE: "s3"}
        fail_cache = {INTEGRITY_SOURCE: "cache"}
        self._dispatch = {
            events.CacheHit: lambda _e: counters["hits"].add(1),
            events.CacheMiss: lambda _e: counters["misses"].add(1),
            events.StaleServed: lambda _e: counters["stale_serves"].add(1),
            events.Evicted: lambda _e: counters["evictions"].add(1),
            events.Downloaded: lambda e: counters["downloaded"].add(e.size),
            events.IntegrityFailed: lambda _e: counters["integrity_failures"].add(1, fail_s3),
            events.ContentDamaged: lambda _e: counters["integrity_failures"].add(1, fail_cache),
        }

    def __call__(self, event: CacheEvent) -> None:
        if self._counters is None:
            if "opentelemetry.metrics" not in sys.modules:
                return
            from opentelemetry import metrics  # noqa: PLC0415 - the optional API, loaded

            self._make(metrics.get_meter_provider())
        count = self._dispatch.get(type(event))
        if count is not None:
            count(event)


def cache_metrics(provider: MeterProvider | None = None) -> Callable[[CacheEvent], None]:
    """The subscriber that counts a cache's events: on ``provider``'s meter, else the
    global provider's."""
    return _CacheMetrics(provider)
