"""What ``broker_reserve.lua`` returns, decoded: the reserved deliveries, the ones
publishers handed a sleeping caller, the acks' verdicts; the script's header is the
contract."""

from __future__ import annotations

from typing import Any, NamedTuple

from .base import UNREAD, Delivery, Unread

__all__ = ["ReserveReply", "decode_handed", "verdicts"]

_DELIVERIES = (1 << 32) - 1
"""A message's stored delivery count carries its re-sends above bit 32 (RESENT in
broker_prelude.lua); this masks the delivery count out of it."""


class ReserveReply(NamedTuple):
    """What ``broker_reserve.lua`` returns, decoded; its header is the contract."""

    eta: bytes
    """The earliest eta among the queues' delayed messages, or b"" when none."""
    now: bytes
    """The time the script ran at (Redis's, or the injected clock's)."""
    acked: list[bool]
    """Per delivery given to ack first, in order: whether its token was current."""
    registered: bool
    """Whether the caller signed up to be handed the next message while it sleeps."""
    handed: list[Delivery]
    """What publishers handed the caller while it slept."""
    taken: list[Delivery]
    """What this call reserved, under ``token``."""

    @classmethod
    def decode(
        cls, reply: list[Any], ordered: list[str], token: str, checked: bool
    ) -> ReserveReply:
        """``ordered``: the queue names as passed; ``checked``: whether the script read the
        coordinator's revocations (else each delivery's revocation is UNREAD)."""
        handed = int(reply[4])
        taken: list[Delivery] = []
        i, end = 5 + handed, len(reply)
        while i < end:  # per queue: its position, the count, whether reasons follow
            queue, count, read = ordered[reply[i] - 1], reply[i + 1], reply[i + 2]
            step = 4 if read else 3
            first = i + 3
            i = first + count * step
            none = None if checked else UNREAD  # read and none revoked, or not read
            taken += [
                Delivery(
                    reply[j].decode(),
                    queue,
                    reply[j + 1][1:],
                    reply[j + 1][0] - 48,  # the priority digit before the body
                    token,
                    reply[j + 2] & _DELIVERIES,
                    none if not read or reply[j + 3] is None else reply[j + 3].decode(),
                    reply[j + 2] >> 32,
                )
                for j in range(first, i, step)
            ]
        return cls(
            reply[0],
            reply[1],
            verdicts(reply[2]),
            bool(reply[3]),
            [decode_handed(item) for item in reply[5 : 5 + handed]],
            taken,
        )


def verdicts(text: bytes) -> list[bool]:
    """Acks' verdicts as the scripts give them (``ack_all()``): "1" acked, "0" stale."""
    return [flag == 49 for flag in text]  # 49: b"1"


def decode_handed(item: bytes) -> Delivery:
    """A message a publisher handed over (``hand`` in broker_prelude.lua)."""
    fields: list[bytes] = []
    at = 0
    for _ in range(6):
        colon = item.index(b":", at)
        size = int(item[at:colon])
        fields.append(item[colon + 1 : colon + 1 + size])
        at = colon + 1 + size
    id_, queue, body, priority, token, reason = fields
    revocation: str | Unread | None = UNREAD
    if item[at:] == b"1":
        revocation = reason.decode() if reason else None
    return Delivery(
        id_.decode(), queue.decode(), body, int(priority), token.decode(), 1, revocation
    )
