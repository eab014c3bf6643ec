"""Dead letters: backlog entries the worker set aside (a payload of the wrong shape at once, any
other failure after MAX_ENVELOPE_ATTEMPTS tries), with the reason. Listing, showing, putting them
back on the shop's backlog once the cause is fixed, or dropping them."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from plugin.handoff import Envelope, Handoff, entry_id


@dataclass(frozen=True)
class DeadLetter:
    index: int  # position on the shop's dead list, oldest first
    id: str  # entry_id: stable while the entry exists
    raw: bytes
    reason: str
    dead_at: datetime | None
    envelope: Envelope | None  # None when the entry itself cannot be decoded

    def summary(self) -> str:
        when = f"{self.dead_at:%Y-%m-%d %H:%M:%S}Z" if self.dead_at else "-"
        what = f"{self.envelope.platform} {self.envelope.topic}" if self.envelope else "undecodable entry"
        return f"{self.index:>3}  {self.id}  {when}  {what}: {self.reason}"


def listing(handoff: Handoff, shop_id: str) -> list[DeadLetter]:
    """The shop's dead letters, oldest first."""
    k = handoff.keys(shop_id)
    raws = handoff.redis.lrange(k.dead, 0, -1)
    ids = [entry_id(raw) for raw in raws]
    notes = handoff.redis.hmget(k.dead_reasons, ids) if ids else []
    out = []
    for i, (raw, eid, note) in enumerate(zip(raws, ids, notes)):
        info = json.loads(note) if note else {}
        try:
            env = Envelope.decode(raw)
        except (ValueError, UnicodeDecodeError):
            env = None
        at = info.get("at")
        out.append(DeadLetter(i, eid, raw, info.get("reason", "no reason recorded"),
                              datetime.fromtimestamp(at, timezone.utc) if at else None, env))
    return out


def find(handoff: Handoff, shop_id: str, refs: list[str]) -> list[DeadLetter]:
    """The dead letters that ``refs`` name, by position (as listed) or id; LookupError for one that does not exist."""
    letters = listing(handoff, shop_id)
    by_ref = {str(d.index): d for d in letters} | {d.id: d for d in letters}
    missing = [r for r in refs if r not in by_ref]
    if missing:
        raise LookupError(f"shop {shop_id} has no dead letter {', '.join(missing)} (see `keepwell dead-letters list`)")
    return list({by_ref[r].id: by_ref[r] for r in refs}.values())


def retry(handoff: Handoff, shop_id: str, letters: list[DeadLetter]) -> int:
    """Put dead letters back on the shop's backlog (with a fresh attempt count) and drain it."""
    k = handoff.keys(shop_id)
    moved = 0
    for d in letters:
        pipe = handoff.redis.pipeline()  # MULTI: an entry is on exactly one of the two lists
        pipe.lrem(k.dead, 1, d.raw)
        pipe.rpush(k.backlog, d.raw)
        pipe.hdel(k.dead_reasons, d.id)
        if d.envelope is not None:
            pipe.hdel(k.attempts, d.envelope.key)
        removed, *_ = pipe.execute()
        if not removed:  # someone else retried or dropped it meanwhile: undo our copy
            handoff.redis.lrem(k.backlog, -1, d.raw)
            continue
        moved += 1
    if moved:
        handoff.ensure_drain(shop_id)
    return moved


def drop(handoff: Handoff, shop_id: str, letters: list[DeadLetter]) -> int:
    """Delete dead letters for good."""
    k = handoff.keys(shop_id)
    dropped = 0
    for d in letters:
        pipe = handoff.redis.pipeline()
        pipe.lrem(k.dead, 1, d.raw)
        pipe.hdel(k.dead_reasons, d.id)
        dropped += pipe.execute()[0]
    return dropped


def counts(handoff: Handoff) -> dict[str, int]:
    """Dead letters per shop, for every shop that has any."""
    out = {}
    prefix = f"{handoff.prefix}:{{"
    for key in handoff.redis.scan_iter(match=f"{handoff.prefix}:{{*}}:backlog:dead", count=1000):
        name = key.decode()
        n = handoff.redis.llen(key)
        if n:
            out[name[len(prefix):name.index("}:backlog:dead")]] = n
    return dict(sorted(out.items()))
