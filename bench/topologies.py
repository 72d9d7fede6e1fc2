"""Redis deployments the benchmark starts for itself, on loopback, and always stops.

- `sentinel`: a master, its replica and three sentinels watching them; the URL is
  redis+sentinel://s1,s2,s3/bench-master/15, so the proxy finds the master as in
  production, through the sentinels.
- `cluster`: three masters sharing the 16384 slots (`redis-cli --cluster create …
  --cluster-yes`), no replicas; the URL is redis+cluster://n1,n2,n3.

Every redis-server runs in a folder of its own under the run's working directory, with
no persistence (as the single Redis of the other rows should be), in a session of its
own, and dies with the benchmark (PR_SET_PDEATHSIG); it is stopped by its PID: SIGTERM,
then SIGKILL for anything left in its session. Nothing here imports from tests/.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Final

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bench.http import HOST
from bench.processes import die_with_parent, free_port, stop_session

START_TIMEOUT: Final = 30.0
SERVICE: Final = "bench-master"
DB: Final = 15  # as the single Redis's default URL
# A replica syncs at once (diskless sync waits 5 s by default for more replicas).
OPTIONS: Final = ("--bind", HOST, "--save", "", "--appendonly", "no",
                  "--repl-diskless-sync-delay", "0")  # fmt: skip


class TopologyUnavailable(RuntimeError):
    """redis-server or redis-cli is missing: the row says so instead of a number."""


class TopologyFailed(RuntimeError):
    """A server did not start, or the deployment never became ready; with its log."""


def binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        package = "redis-tools" if name == "redis-cli" else "redis-server"
        raise TopologyUnavailable(f"no {name} (apt-get install {package})")
    return found


class RedisProcess:
    """One redis-server (or sentinel) of the benchmark's."""

    def __init__(self, name: str, args: list[str], folder: Path, port: int) -> None:
        self.name = name
        self.port = port
        self.log = folder / f"{name}.log"
        folder.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(  # noqa: S603 (redis-server from PATH, fixed arguments)
                [binary("redis-server"), *args],
                cwd=folder,  # whatever it writes (a replica's sync) stays in the run's folder
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if sys.platform == "linux" else None,
            )

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def client(self) -> aioredis.Redis:
        return aioredis.Redis(host=HOST, port=self.port, socket_connect_timeout=0.5,
                              socket_timeout=2)  # fmt: skip

    def stop(self) -> None:
        stop_session(self.process)


async def until(
    what: str, ready: Callable[[], Awaitable[bool]], servers: list[RedisProcess]
) -> None:
    """Poll `ready` until true; TopologyFailed with the logs if a server dies or it's late."""
    deadline = time.monotonic() + START_TIMEOUT
    while not await ready():
        for server in servers:
            if server.process.poll() is not None:
                raise TopologyFailed(f"{server.name} exited:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"{s.name}:\n{s.log_tail(5)}" for s in servers)
            raise TopologyFailed(f"{what} not ready in {START_TIMEOUT:g} s:\n{logs}")
        await asyncio.sleep(0.1)


async def ask(server: RedisProcess, *command: str) -> object:
    """One command's answer as redis-py parses it, or None while the server can't answer."""
    client = server.client()
    try:
        answer: object = await client.execute_command(*command)  # type: ignore[no-untyped-call]
    except (RedisError, OSError):
        return None
    finally:
        await client.aclose()
    return answer


def text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def started(stack: AsyncExitStack, server: RedisProcess) -> RedisProcess:
    stack.callback(server.stop)
    return server


@asynccontextmanager
async def sentinel(folder: Path) -> AsyncIterator[str]:
    """A master, a replica and three sentinels; yields the redis+sentinel:// URL once the
    replica is in sync and every sentinel names the master."""
    async with AsyncExitStack() as stack:
        master_port, replica_port = free_port(), free_port()
        master = started(stack, RedisProcess(
            "master", ["--port", str(master_port), *OPTIONS], folder / "master", master_port
        ))  # fmt: skip
        replica = started(stack, RedisProcess(
            "replica",
            ["--port", str(replica_port), *OPTIONS, "--replicaof", HOST, str(master_port)],
            folder / "replica",
            replica_port,
        ))  # fmt: skip
        sentinels = []
        for n in range(3):
            port = free_port()
            home = folder / f"sentinel-{n}"
            home.mkdir(parents=True, exist_ok=True)
            config = home / "sentinel.conf"  # a file each: sentinels rewrite theirs
            config.write_text(
                f"port {port}\nbind {HOST}\ndir {home}\n"
                f"sentinel monitor {SERVICE} {HOST} {master_port} 2\n"
                f"sentinel down-after-milliseconds {SERVICE} 5000\n"
            )
            sentinels.append(started(stack, RedisProcess(
                f"sentinel-{n}", [str(config), "--sentinel"], home, port
            )))  # fmt: skip
        everyone = [master, replica, *sentinels]

        async def ready() -> bool:
            info = await ask(master, "INFO", "replication")
            link = info.get("slave0") if isinstance(info, dict) else None
            if not isinstance(link, dict) or link.get("state") != "online":
                return False  # the replica is not in sync yet
            for s in sentinels:
                named = await ask(s, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                where = [text(x) for x in named] if isinstance(named, list | tuple) else []
                if where != [HOST, str(master_port)]:
                    return False  # not asked the master yet
            return True

        await until("the Sentinel", ready, everyone)
        hosts = ",".join(f"{HOST}:{s.port}" for s in sentinels)
        yield f"redis+sentinel://{hosts}/{SERVICE}/{DB}"


@asynccontextmanager
async def cluster(folder: Path, masters: int = 3) -> AsyncIterator[str]:
    """`masters` cluster nodes sharing the slots; yields the redis+cluster:// URL once
    every node says cluster_state:ok."""
    cli = binary("redis-cli")
    async with AsyncExitStack() as stack:
        nodes = []
        for n in range(masters):
            port, bus = free_port(), free_port()  # port + 10000 may be past 65535
            home = folder / f"node-{n}"
            nodes.append(started(stack, RedisProcess(
                f"node-{n}",
                ["--port", str(port), *OPTIONS, "--cluster-enabled", "yes",
                 "--cluster-port", str(bus), "--cluster-config-file", str(home / "nodes.conf"),
                 "--cluster-node-timeout", "5000"],
                home,
                port,
            )))  # fmt: skip

        async def answering() -> bool:
            return all([text(await ask(node, "ECHO", "up")) == "up" for node in nodes])

        await until("the cluster's nodes", answering, nodes)
        create = await asyncio.create_subprocess_exec(
            cli, "--cluster", "create", *(f"{HOST}:{node.port}" for node in nodes),
            "--cluster-replicas", "0", "--cluster-yes",
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            output, _ = await asyncio.wait_for(create.communicate(), START_TIMEOUT)
        finally:
            if create.returncode is None:  # late, or the run was interrupted
                create.kill()
                await create.wait()
        if create.returncode != 0:
            raise TopologyFailed(f"redis-cli --cluster create failed:\n{output.decode()[-2000:]}")

        async def ok() -> bool:
            states = [await ask(node, "CLUSTER", "INFO") for node in nodes]
            return all("cluster_state:ok" in text(state) for state in states)  # the raw text

        await until("the cluster", ok, nodes)
        yield "redis+cluster://" + ",".join(f"{HOST}:{node.port}" for node in nodes)
