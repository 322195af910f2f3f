"""The event stream of a run: plain dicts with a ``"type"`` and a ``"time"``, kept in order and sent
to subscribers as they happen. No Lightning here: every trainer and every view (widgets, loggers,
``run.subscribe(fn)``) shares this one module.

Types every trainer emits (see :class:`vitdream.base.Trainer`): ``status`` (``state``, ``message``),
``start`` (``step``, ``max_steps``), ``step`` (``step``, ``loss`` and the trainer's own metrics),
``error`` (``message``, ``traceback``). Trainers add their own (``epoch``, ``validation``,
``checkpoint``...). A subscriber that raises is dropped, never the run.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

Event = dict[str, Any]
Subscriber = Callable[[Event], None]


class EventLog:
    """Thread-safe list of events plus subscribers called (in the emitting thread) for each new one."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def emit(self, type: str, **fields: Any) -> Event:
        event = {"type": type, "time": time.time(), **fields}
        with self._lock:
            self.events.append(event)
            subscribers = list(self._subscribers)
        for fn in subscribers:
            try:
                fn(event)
            except Exception:  # a broken consumer must not break training
                self.unsubscribe(fn)
        return event

    def subscribe(self, fn: Subscriber, replay: bool = False) -> None:
        with self._lock:
            self._subscribers.append(fn)
            past = list(self.events) if replay else []
        for event in past:
            fn(event)

    def unsubscribe(self, fn: Subscriber) -> None:
        with self._lock:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

    def of_type(self, type: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e["type"] == type]
