"""The request lines' writer: lines out in batches from a thread, a bounded buffer that
drops and counts rather than wait, a write under the handler's lock in pieces a pipe
keeps whole, flush and close."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from types import TracebackType

import pytest

from tests.support import wait_until
from widget_proxy.ops import batches
from widget_proxy.ops.batches import PIPE_BUF, BatchWriter, pieces


class Stalled(io.StringIO):
    """A stream whose writes wait until it is let go (a pipe nobody reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = threading.Event()
        self.go = threading.Event()

    def write(self, text: str) -> int:
        self.writing.set()
        self.go.wait(10)
        return super().write(text)


class Broken(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError("nobody reads")


class Watched:
    """A lock that says whether it was held when the stream was written to."""

    def __init__(self) -> None:
        self.held = False

    def __enter__(self) -> None:
        self.held = True

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.held = False


class Checked(io.StringIO):
    def __init__(self, lock: Watched) -> None:
        super().__init__()
        self.lock = lock
        self.unlocked_writes = 0

    def write(self, text: str) -> int:
        self.unlocked_writes += not self.lock.held
        return super().write(text)


def test_lines_leave_in_batches_from_the_thread() -> None:
    stream = io.StringIO()
    writer = BatchWriter(stream, interval=0.01)
    try:
        for n in range(100):
            writer.append(f"line {n}\n")
        wait_until(lambda: stream.getvalue().count("\n") == 100)
    finally:
        writer.close()

    assert stream.getvalue() == "".join(f"line {n}\n" for n in range(100))
    assert writer.dropped == 0


def test_a_stalled_stream_drops_and_counts_lines_instead_of_waiting() -> None:
    stream = Stalled()
    counted: list[int] = []
    writer = BatchWriter(stream, max_lines=5, interval=0.01, on_drop=counted.append)
    try:
        writer.append("first\n")
        assert stream.writing.wait(10)  # the thread is stuck writing "first"
        for n in range(20):  # the loop's side: never waits on the stream
            writer.append(f"line {n}\n")
        assert writer.dropped == 15
        assert sum(counted) == 15
    finally:
        stream.go.set()
        writer.close()

    assert stream.getvalue() == "first\n" + "".join(f"line {n}\n" for n in range(5))


def test_a_failing_stream_counts_its_lost_lines_and_the_writer_goes_on() -> None:
    counted: list[int] = []
    writer = BatchWriter(Broken(), interval=0.01, on_drop=counted.append)
    try:
        writer.append("a\n")
        writer.append("b\n")
        wait_until(lambda: writer.dropped == 2)
        writer.append("c\n")
        wait_until(lambda: writer.dropped == 3)
    finally:
        writer.close()

    assert sum(counted) == 3


def test_flush_writes_now_and_close_writes_the_rest() -> None:
    stream = io.StringIO()
    writer = BatchWriter(stream, interval=3600)  # the thread alone would wait an hour
    writer.append("one\n")
    writer.flush()
    assert stream.getvalue() == "one\n"

    writer.append("two\n")
    writer.close()
    writer.close()  # again: nothing more to do

    assert stream.getvalue() == "one\ntwo\n"


def test_each_batch_is_written_under_the_handlers_lock() -> None:
    lock = Watched()
    stream = Checked(lock)
    writer = BatchWriter(stream, lock=lock, interval=0.01)
    try:
        for n in range(10):
            writer.append(f"{n}\n")
        wait_until(lambda: stream.getvalue().count("\n") == 10)
    finally:
        writer.close()

    assert stream.unlocked_writes == 0


def test_a_file_gets_whole_lines_in_writes_a_pipe_keeps_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers sharing one stderr pipe never cut into each other's lines: each write is
    whole lines of at most PIPE_BUF bytes (a longer line alone), as logging's were."""
    writes: list[bytes] = []
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(batches.os, "write", write)
    lines = [f"{n:04d} {'é' * (n % 90)} {'x' * (n % 300)}\n" for n in range(300)]
    lines.insert(150, "y" * (3 * PIPE_BUF) + "\n")
    with (tmp_path / "log").open("w", encoding="utf-8") as stream:
        writer = BatchWriter(stream, interval=3600)
        for line in lines:
            writer.append(line)
        writer.close()

    assert (tmp_path / "log").read_text(encoding="utf-8") == "".join(lines)
    assert len(writes) > 10
    assert all(w.endswith(b"\n") for w in writes)
    assert [len(w) for w in writes if len(w) > PIPE_BUF] == [3 * PIPE_BUF + 1]


def test_pieces_are_whole_lines_within_the_bound() -> None:
    assert pieces(b"a\nbb\nccc\n", most=5) == [b"a\nbb\n", b"ccc\n"]
    assert pieces(b"toolong\nb\n", most=4) == [b"toolong\n", b"b\n"]
    assert pieces(b"a\nno end", most=4) == [b"a\n", b"no end"]
    assert pieces(b"") == []
