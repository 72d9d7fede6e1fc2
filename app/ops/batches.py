"""Finished log lines written by a thread of their own, in batches: the request line's
way out under `widget-proxy serve`.

`append` puts a line in a bounded buffer and returns: one `deque.append`, never a
lock, never a system call, so the event loop never waits on the log's stream (a full
pipe, a slow terminal). A thread writes whatever the buffer holds every `interval`
seconds, under the handler's lock, so that a record `logging` writes meanwhile is
never cut into; in writes of whole lines of at most `PIPE_BUF` bytes each, which a
pipe keeps whole, so that the workers of `serve --workers N`, sharing one stderr pipe
(a container's log), never cut into each other's lines either (as `logging`'s one
write a line never did). A full buffer drops the
line and counts it (`dropped`, and `on_drop`: a Prometheus counter); so does a write
that fails. `flush` writes what waits now (a reload, the end of the lifespan), `close`
stops the thread after a last write; the process's exit closes it too.
"""

from __future__ import annotations

import atexit
import os
import select
import threading
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Final, TextIO

DEFAULT_MAX_LINES: Final = 10_000  # a second of lines at 10,000 req/s, ~2 MB
DEFAULT_INTERVAL: Final = 0.1  # seconds a line waits at most, when nothing stalls
# The most a pipe writes whole, between other writers' bytes (POSIX: at least 512).
PIPE_BUF: Final = getattr(select, "PIPE_BUF", 512)


class BatchWriter:
    def __init__(
        self,
        stream: TextIO,
        *,
        lock: AbstractContextManager[object] | None = None,
        max_lines: int = DEFAULT_MAX_LINES,
        interval: float = DEFAULT_INTERVAL,
        on_drop: Callable[[int], None] | None = None,
    ) -> None:
        """`lock`: what `logging` holds while it writes to `stream` (its handler's)."""
        self._stream = stream
        self._stream_lock = lock if lock is not None else nullcontext()
        self.max_lines = max_lines
        self._interval = interval
        self._on_drop = on_drop
        self.buffer: deque[str] = deque()  # appended to by one thread (the event loop's)
        self._counting = threading.Lock()
        self._writing = threading.Lock()  # one writer at a time: the thread, or a flush
        self._wake = threading.Event()
        self._closed = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name="widget-proxy log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    def append(self, line: str) -> None:
        """Queue `line` (its line break included) for the writer; drop it if full.
        (`FastLines` does the same inline.)"""
        if len(self.buffer) < self.max_lines:
            self.buffer.append(line)
        else:
            self.drop(1)

    def flush(self) -> None:
        """Write what waits, now, in the caller's thread (blocking: from the loop, use
        `asyncio.to_thread`)."""
        self._write()

    def close(self) -> None:
        """Stop the thread after a last write (idempotent)."""
        atexit.unregister(self.close)
        self._closed = True
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._write()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._write()

    def _write(self) -> None:
        with self._writing:
            buffer = self.buffer
            # popleft, one by one: `append` may add to the buffer meanwhile, from
            # another thread, and each popleft is atomic where a swap would not be.
            lines = [buffer.popleft() for _ in range(len(buffer))]
            if not lines:
                return
            try:
                with self._stream_lock:
                    self._out("".join(lines))
            except (OSError, ValueError):  # a closed or broken stream: the lines are lost
                self.drop(len(lines))

    def _out(self, text: str) -> None:
        stream = self._stream
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (a StringIO)
            stream.write(text)
            stream.flush()
            return
        stream.flush()  # anything `logging` left in the stream's buffer goes first
        data = text.encode(stream.encoding or "utf-8", stream.errors or "strict")
        for piece in pieces(data):
            while piece:
                piece = piece[os.write(fd, piece) :]

    def drop(self, count: int) -> None:
        """Count `count` lines lost (rare: under a lock, from either thread)."""
        with self._counting:
            self.dropped += count
        if self._on_drop is not None:
            self._on_drop(count)


def pieces(data: bytes, most: int = PIPE_BUF) -> list[bytes]:
    """`data` (whole lines) in pieces of whole lines, each of at most `most` bytes but
    for a line longer than that, which is a piece of its own."""
    found = []
    start = 0
    while start < len(data):
        end = data.rfind(b"\n", start, start + most) + 1  # the last line end that fits
        if end <= start:  # one line longer than `most`: whole
            end = data.find(b"\n", start) + 1 or len(data)
        found.append(data[start:end])
        start = end
    return found
