"""What every store operation goes through, declared on its class with `@operations`.

Each public coroutine method of a store part is one operation: "Redis is away" leaving it is
StoreUnavailable (a 503 with Retry-After) whichever command failed, so nothing above the store
maps Redis errors; and its time goes to the one observer `observe_with` installs (the metrics,
labelled with the method's name), none until then.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from handoff.store.connection import unavailable

T = TypeVar("T")
# Receives a timed operation's labels (its method's name) and its duration in seconds.
Observer = Callable[[tuple[str], float], None]
# Marks a method wrapped here (what the layering test looks for).
MARK = "__store_operation__"


def _ignore(labels: tuple[str], seconds: float) -> None:
    return None


_observer: Observer = _ignore


def observe_with(observer: Observer) -> None:
    """Send every timed store operation of this process to `observer` from now on."""
    global _observer
    _observer = observer


def operations(*, timed: bool = True, untimed: frozenset[str] = frozenset()
               ) -> Callable[[type[T]], type[T]]:
    """Make each public coroutine method of the class a store operation: timed (if `timed`),
    except those named in `untimed` (waits for news, which are no Redis latency) and class
    methods (they run before any app does)."""
    def decorate(cls: type[T]) -> type[T]:
        for name, member in list(vars(cls).items()):
            if name.startswith("_"):
                continue
            if isinstance(member, classmethod) and inspect.iscoroutinefunction(member.__func__):
                setattr(cls, name, classmethod(_operation(member.__func__, None)))
            elif inspect.iscoroutinefunction(member):
                labels = (name,) if timed and name not in untimed else None
                setattr(cls, name, _operation(member, labels))
        return cls
    return decorate


def _operation(method: Callable[..., Awaitable[Any]], labels: tuple[str] | None
               ) -> Callable[..., Awaitable[Any]]:
    if labels is None:
        @functools.wraps(method)
        async def mapped(*args: Any, **kwargs: Any) -> Any:
            try:
                return await method(*args, **kwargs)
            except Exception as exc:
                error = unavailable(exc)
                if error is None:
                    raise
                raise error from exc
        setattr(mapped, MARK, True)
        return mapped
    named = labels
    clock = time.perf_counter

    @functools.wraps(method)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return await method(*args, **kwargs)
        except Exception as exc:
            error = unavailable(exc)
            if error is None:
                raise
            raise error from exc
        finally:
            _observer(named, clock() - start)
    setattr(timed, MARK, True)
    return timed
