"""Raw HTTP/1.1 over a socket: what a client sends when no HTTP library would send it
(a head of many megabytes, reads cut mid-head), and what the server answered."""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit


def connect(url: str) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "", parts.port or 80), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each part its own read
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    received = bytearray()
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return bytes(received)
        if not data:
            return bytes(received)
        received += data


def exchange(url: str, *parts: bytes, answers: int = 1) -> bytes:
    """Send `parts` one after the other; read until the server has sent `answers`
    complete answers (by their Content-Length), or closed the connection."""
    with connect(url) as sock:
        for part in parts:
            sock.sendall(part)
        received = b""
        while complete(received) < answers:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
        return received


def complete(received: bytes) -> int:
    """How many whole answers `received` holds (each with a Content-Length)."""
    count, rest = 0, received
    while True:
        head, found, after = rest.partition(b"\r\n\r\n")
        if not found:
            return count
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        size = int(length.group(1)) if length else 0
        if len(after) < size:
            return count
        count, rest = count + 1, after[size:]


@dataclass(frozen=True)
class Flood:
    sent: int  # bytes the client got into the connection before it failed (or all)
    answer: bytes  # what the server sent back


def flood(url: str, head: bytes, total: int, chunk: int = 64 * 1024) -> Flood:
    """Send `head`, then header bytes up to `total`, while reading the answer: how far
    the client got before the server closed the connection on it."""
    with connect(url) as sock:
        answer: list[bytes] = []
        reader = threading.Thread(target=lambda: answer.append(read_all(sock)), daemon=True)
        reader.start()
        sent = 0
        filler = b"j" * chunk
        try:
            sock.sendall(head)
            sent = len(head)
            while sent < total:
                sock.sendall(filler)
                sent += len(filler)
        except OSError:  # reset, broken pipe: the server closed the connection
            pass
        else:
            sock.sendall(b"\r\n\r\n")
        reader.join(timeout=60)
        return Flood(sent, answer[0] if answer else b"")
