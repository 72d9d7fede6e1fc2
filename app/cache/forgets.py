"""The forget log in Redis (one server, a Sentinel's master, or a Cluster).

Three keys under one hash tag (`{forget}`: one slot of a Cluster, so one script reads
or writes them all): a counter bumped by every forget (what a sync reads: one GET), the
users' versions (a hash: the user's keyed hash → `version at`), and the last `--all`'s
(`version at`). A forget is one script (written atomically, the versions older than
`keep` dropped), then a PUBLISH of the counter's value on `{prefix}forget`: nothing
else travels, no hash and no email. Every process subscribes (redis-py's pub/sub: a
Cluster delivers a plain PUBLISH to every node's subscribers; a Sentinel's client
follows the master), and on a message reads the keys again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final

from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster

from .revocation import Forgotten, as_versions
from .topology import Client

WAIT: Final = 1.0  # seconds a subscriber waits for a message before asking again

_WRITE = """
local seq = redis.call('INCR', KEYS[1])
local value = ARGV[1] .. ' ' .. ARGV[2]
if #ARGV == 2 then  -- everybody
  redis.call('SET', KEYS[3], value)
  redis.call('DEL', KEYS[2])
else
  for i = 4, #ARGV do redis.call('HSET', KEYS[2], ARGV[i], value) end
  local oldest = tonumber(ARGV[2]) - tonumber(ARGV[3])
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    local at = tonumber(string.match(all[i + 1], ' (.+)$'))
    if at == nil or at < oldest then redis.call('HDEL', KEYS[2], all[i]) end
  end
end
return seq
"""

_READ = """
return {redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[3]) or '',
        redis.call('HGETALL', KEYS[2])}
"""


class RedisForgets:
    def __init__(self, client: Client, *, prefix: str = "widget-proxy:", keep: float) -> None:
        """`client`: the cache's own (`RedisStore.client`): the store closes it."""
        self._redis = client
        self._keys = [f"{prefix}{{forget}}:{k}" for k in ("seq", "users", "epoch")]
        self.channel = f"{prefix}forget"
        self._keep = keep
        self._write = client.register_script(_WRITE)
        self._read = client.register_script(_READ)

    async def write(self, users: list[str] | None, version: str, at: float) -> None:
        args = [version, repr(at)] + ([] if users is None else [str(self._keep), *users])
        seq = await self._write(keys=self._keys, args=args)
        await self._redis.publish(self.channel, str(seq))

    async def stamp(self) -> object:
        return await self._redis.get(self._keys[0])

    async def read(self) -> Forgotten:
        _, epoch, flat = await self._read(keys=self._keys)
        users = as_versions({_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)})
        found = as_versions({"": _text(epoch)}) if epoch else {}
        return Forgotten(found.get(""), users)

    async def wakeups(self) -> AsyncIterator[None]:
        """Yields once subscribed (what was missed meanwhile is read then), and at each
        message; raises when the subscription fails (the caller subscribes again)."""
        pubsub: PubSub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            yield
            while True:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=WAIT)
                if message is not None:
                    yield
                elif isinstance(self._redis, RedisCluster):
                    continue  # (its pub/sub reads with the timeout above: nothing to check)
                elif not pubsub.connection or not pubsub.connection.is_connected:
                    raise ConnectionError("the subscription's connection is gone")
        finally:
            await pubsub.aclose()

    async def aclose(self) -> None:
        return None  # the client is the store's


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
