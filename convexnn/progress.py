"""A one-line progress display for long solves.

``Progress(label, mode)`` with ``mode``:

* ``"auto"`` — on a terminal (stderr is a TTY), after ``delay`` seconds, one line that
  is rewritten in place at most every ``every`` seconds; silent otherwise (pipes, files,
  tests);
* ``"verbose"`` — one line per update (at most every ``every`` seconds), also when
  stderr is not a terminal (``convexnn solve --verbose``);
* ``"quiet"`` — nothing (``--quiet``).

Methods call :meth:`Progress.update` with the numbers a user wants to see (iteration,
objective, relative gap); the elapsed time is added. :meth:`Progress.ticking` keeps the
elapsed time moving while native code (an interior-point solver) works.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, TextIO

__all__ = ["Progress", "MODES"]

MODES = ("auto", "verbose", "quiet")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    return str(value)


class Progress:
    """Progress of one solve on stderr (see the module docstring)."""

    def __init__(self, label: str, mode: str | bool | None = "auto", *, delay: float = 1.0,
                 every: float = 0.5, stream: TextIO | None = None):
        if mode is True:
            mode = "auto"
        elif mode in (False, None):
            mode = "quiet"
        self.label, self.mode = label, mode
        self.stream = stream if stream is not None else sys.stderr
        self.delay = 0.0 if mode == "verbose" else delay
        self.every = every if mode == "auto" else max(every, 2.0)
        self.start = time.perf_counter()
        self.last = -float("inf")
        self.shown = False
        self.fields: dict[str, Any] = {}
        self._lock = threading.Lock()
        tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.enabled = mode == "verbose" or (mode == "auto" and tty)

    def update(self, force: bool = False, **fields: Any) -> None:
        """Show ``fields`` (with the elapsed time), throttled."""
        if not self.enabled:
            return
        with self._lock:
            self.fields.update(fields)
            now = time.perf_counter()
            elapsed = now - self.start
            if not force and (elapsed < self.delay or now - self.last < self.every):
                return
            self.last = now
            parts = [f"{k} {_fmt(v)}" for k, v in self.fields.items()]
            text = f"{self.label}: " + ", ".join(parts + [f"{elapsed:.1f} s"])
            try:
                if self.mode == "auto":
                    self.stream.write("\r" + text[:150].ljust(80))
                else:
                    self.stream.write(text + "\n")
                self.stream.flush()
                self.shown = True
            except (OSError, ValueError):
                self.enabled = False

    @contextlib.contextmanager
    def ticking(self, **fields: Any) -> Iterator[None]:
        """Refresh the elapsed time once a second while the block runs."""
        if not self.enabled:
            yield
            return
        stop = threading.Event()

        def tick() -> None:
            while not stop.wait(1.0):
                self.update(**fields)

        thread = threading.Thread(target=tick, name="convexnn-progress", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(2.0)

    def close(self) -> None:
        """End the line (when something was shown)."""
        if self.enabled and self.shown and self.mode == "auto":
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("\n")
                self.stream.flush()
