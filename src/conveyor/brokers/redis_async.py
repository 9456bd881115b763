"""The Redis broker for coroutines: what the async client needs of it, publish and contains.

The asyncio twin of ``RedisBroker``: the same ``broker_publish.lua`` with the arguments that
its header documents (runs of messages sharing a queue, a priority and an eta), so a
message sent here is stored, handed to a sleeping worker and deduplicated exactly as one
sent from a thread. A send retries while Redis is unreachable as the sync broker's does
(``publish_retries``, doubling delays), sleeping with ``asyncio.sleep``. Time is Redis's
own: a broker made with a fake clock (the contract tests') is not used from coroutines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..grouped_sends import GroupedSends
from ..redis_async_link import AsyncRedisLink
from ..redis_connection import RedisLink
from .base import Envelope
from .redis import RedisBroker, publish_arguments

__all__ = ["AsyncRedisBroker"]

_CHUNK = 5000
"""Messages per script call, as the sync broker's; a larger send is one MULTI of calls."""


class AsyncRedisBroker:
    """Publishes to and looks up the queues of ``broker``, for coroutines."""

    def __init__(self, broker: RedisBroker) -> None:
        self.broker = broker
        self.prefix = broker.prefix
        self.link = AsyncRedisLink(RedisLink(broker.url, prefix=broker.prefix))
        self._publish = self.link.script(
            ("expiring.lua", "broker_prelude.lua"), "broker_publish.lua"
        )
        self._sends = GroupedSends(self._publish_now)

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Publish; sends made meanwhile on the same loop go together (``GroupedSends``)."""
        if envelopes:
            await self._sends.publish(envelopes)

    async def _publish_now(self, envelopes: Sequence[Envelope]) -> None:
        broker = self.broker
        head = broker.publish_head()
        calls = [
            (*head, *publish_arguments(envelopes[i : i + _CHUNK]))
            for i in range(0, len(envelopes), _CHUNK)
        ]
        script = self._publish
        what = f"publishing {len(envelopes)} message(s), tried {broker.publish_retries + 1} times"

        async def publish() -> Any:
            if len(calls) == 1:
                return await script(calls[0])
            return await script.pipelined(calls)  # all chunks or none, in one round trip

        await self.link.call(
            what, publish, retries=broker.publish_retries, delay=broker.publish_retry_delay
        )

    async def contains(self, ids: Sequence[str]) -> set[str]:
        """The ids among ``ids`` whose messages are live (``Broker.contains``)."""
        if not ids:
            return set()
        bodies = f"{self.prefix}b"
        link = self.link
        if len(ids) == 1:
            found = await link.call(
                "looking up messages", lambda: link.command("HEXISTS", bodies, ids[0]), 1
            )
            return set(ids) if found else set()
        lookups = [("HEXISTS", bodies, i) for i in ids]
        flags = await link.call("looking up messages", lambda: link.command_many(lookups), 1)
        return {i for i, flag in zip(ids, flags, strict=True) if flag == 1}
