"""A TCP relay that delays every chunk it forwards: a Redis some milliseconds away.

The proxy connects to the relay; the relay connects on to the real server, and each
chunk read in either direction is written out `delay` seconds after it arrived, in
order. A round trip through it takes twice `delay` more than without it, while the
bytes keep flowing (a chunk does not wait for the one before it to be delivered: a
latency, not a bandwidth limit). It runs an asyncio loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from widget_proxy.servers import bind


@contextmanager
def delaying_relay(port: int, delay: float) -> Iterator[str]:
    """`redis://` URL of a relay to 127.0.0.1:`port` that delays each chunk by `delay` s."""
    listening = bind()
    listening.listen()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stopped = asyncio.Event()

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        chunks: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while (item := await chunks.get())[1]:
                due, data = item
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(data)
                await writer.drain()
            writer.close()

        delivering = loop.create_task(deliver())
        try:
            while data := await reader.read(65536):
                await chunks.put((loop.time() + delay, data))
        except OSError:
            pass  # the other side went away: the end of this direction
        await chunks.put((loop.time() + delay, b""))  # the end, after what came before it
        with contextlib.suppress(OSError):
            await delivering

    async def connection(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            client_w.close()  # the server is down: so is the relay, for this connection
            return
        try:
            await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))
        except asyncio.CancelledError:  # the relay stops: so does the connection, quietly
            client_w.close()
            server_w.close()

    async def main() -> None:
        server = await asyncio.start_server(connection, sock=listening)
        ready.set()
        await stopped.wait()
        server.close()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:  # the open connections: they end with the relay
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(timeout=10)
    try:
        yield f"redis://127.0.0.1:{listening.getsockname()[1]}/0"
    finally:
        loop.call_soon_threadsafe(stopped.set)
        thread.join(timeout=10)
        loop.close()
