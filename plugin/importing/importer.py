"""Importing a store's past: its customers and paid orders, folded into customer states.

- Nothing imported is acted on (``fold``); afterwards the timers the past implies are set
  (``plugin.engine.imported``: future lapses and occasions, and with ``on_import: catch_up`` the
  lapses already due, spread over days).
- Batches of records are folded in one transaction together with the connector's cursor, so a
  crash loses at most the batch in hand and the next run continues from the stored cursor.
  Folding is idempotent, so a re-import (or a batch folded twice) changes nothing.
- Memory is bounded by the customer states a batch touches: the store's records are streamed,
  never listed, and each event is applied as it is read.
- While an import runs the shop's backlog waits (``importing``): a live order folded before its
  customer's history would look like a first order, and two writers would race on one state.
"""
from __future__ import annotations

import gc
import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterator

from sqlalchemy import select

import connectors
from connectors.base import HistoryNotReady
from plugin.db import CustomerRow, ImportRow, ShopRow, TimerRow
from plugin.engine import Kind
from plugin.engine.imported import implied_timers
from plugin.engine.state import CustomerState, state_from_dict
from plugin.errors import PayloadError, StoreError, UnknownShop
from plugin.events import event_to_dict
from plugin.importing.fold import CHUNK, Folder
from plugin.engine.ruleset import for_shop
from plugin.shops import active_rules, referral_key, to_shop

log = logging.getLogger("keepwell.import")

BATCH = 200_000  # events folded per transaction at most (and states held: fold.KEEP)
REPORT_EVERY = 1_000  # records read between two progress reports
HOLD_S = 180  # the importing flag outlives a crashed import by this much
MAX_STORE_RETRIES = 6


@dataclass
class Progress:
    status: str  # running | waiting | done | failed | busy
    customers: int = 0
    orders: int = 0
    total: int | None = None
    skipped: int = 0
    detail: str = ""
    retry_after: float = 0.0


def importing_key(prefix: str, shop_id: str) -> str:
    return f"{prefix}:{{{shop_id}}}:importing"


def is_importing(rt, shop_id: str) -> bool:
    """True while an import holds the shop (its backlog waits)."""
    return bool(rt.redis.exists(importing_key(rt.config.queue, shop_id)))


def enqueue(queue, shop_id: str, since: datetime | None = None, delay_s: float = 0, continuing: bool = False):
    """Run the shop's import on a worker (now, or after ``delay_s`` seconds): at install and
    connect, and (``continuing``) again while the store prepares its history."""
    args = (shop_id, since.isoformat() if since else None, continuing)
    if delay_s:
        return queue.enqueue_in(timedelta(seconds=delay_s), "plugin.jobs.import_history", *args,
                                result_ttl=3600, job_timeout=3600)
    return queue.enqueue("plugin.jobs.import_history", *args, result_ttl=3600, job_timeout=3600)


def resume_stopped(rt) -> int:
    """Continue, on a worker, the imports a dead worker left unfinished (a deploy's restart, the
    job's time limit): running, but no longer held by anyone. Returns how many were restarted."""
    with rt.sessions() as session:
        running = session.scalars(select(ImportRow.shop_id).where(ImportRow.status == "running")).all()
    slot = rt.clock().strftime("%Y%m%d%H%M")
    resumed = 0
    for shop_id in running:
        job_id = f"{rt.config.queue}-import-{shop_id}-{slot}"  # many workers' ticks: one job a minute
        if not is_importing(rt, shop_id) and rt.queue.fetch_job(job_id) is None:
            rt.queue.enqueue("plugin.jobs.import_history", shop_id, None, True, job_id=job_id,
                             result_ttl=3600, job_timeout=3600)
            resumed += 1
    return resumed


def run(rt, shop_id: str, since: datetime | None = None, *, wait: bool = False, continuing: bool = False,
        progress: Callable[[Progress], None] | None = None) -> Progress:
    """Import (or continue importing) the shop's history. ``wait``: sleep while the store
    prepares it (the CLI); otherwise the job re-enqueues itself and returns ``waiting``.
    ``continuing``: only carry on an unfinished import (someone may have finished it meanwhile)."""
    if continuing:
        with rt.sessions() as session:
            row = session.get(ImportRow, shop_id)
            if row is None or row.status != "running":
                return Progress(row.status if row else "gone", detail="nothing left to continue")
    hold = Hold(rt.redis, importing_key(rt.config.queue, shop_id))
    if not hold.acquire():
        return Progress("busy", detail="another import of this shop is running")
    result = None
    try:
        with few_full_collections():
            result = _run(rt, shop_id, since, wait, progress or (lambda p: None), hold)
        return result
    finally:
        if result is not None and result.status == "waiting":
            hold.pass_on(result.retry_after)  # the shop stays held until the re-enqueued job takes over
        else:
            hold.release()


@contextmanager
def few_full_collections(threshold: int = 1000):
    """Python's cyclic garbage collector while an import runs: it holds thousands of long-lived
    customer states, which each full collection would walk through again (a third of the import's
    time); young garbage is still collected as usual."""
    old = gc.get_threshold()
    gc.set_threshold(old[0], old[1], max(old[2], threshold))
    try:
        yield
    finally:
        gc.set_threshold(*old)


class Hold:
    """The shop's importing flag: held by one run at a time, and between runs while the store
    prepares its history, so the shop's live events keep waiting. Expires if the import dies."""

    WAITING = "waiting"
    _TAKE = """
    local v = redis.call('GET', KEYS[1])
    if v == false or v == ARGV[2] then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3]) return 1 end
    return 0
    """

    def __init__(self, redis, key: str):
        self.redis, self.key, self.token = redis, key, uuid.uuid4().hex

    def acquire(self) -> bool:
        """Take the flag when it is free or only marks a waiting import."""
        return bool(self.redis.eval(self._TAKE, 1, self.key, self.token, self.WAITING, HOLD_S))

    def extend(self, seconds: float) -> None:
        self.redis.expire(self.key, int(seconds) + 1)

    def pass_on(self, wait_s: float) -> None:
        self.redis.set(self.key, self.WAITING, ex=int(wait_s + HOLD_S))

    def release(self) -> None:
        if self.redis.get(self.key) == self.token.encode():
            self.redis.delete(self.key)


def _begin(rt, shop_id: str, since: datetime | None):
    """The shop and its import row: the unfinished one, or a fresh one."""
    with rt.sessions.begin() as session:
        shop_row = session.get(ShopRow, shop_id)
        if shop_row is None or not shop_row.active:
            raise UnknownShop(f"no active shop {shop_id!r}")
        row = session.get(ImportRow, shop_id)
        fresh = row is None
        if fresh:
            row = ImportRow(shop_id=shop_id)
            session.add(row)
        if fresh or row.status != "running" or (since is not None and row.since != since):
            row.status, row.since, row.cursor, row.error = "running", since, {}, None
            row.customers, row.orders, row.total = 0, 0, None
            row.started_at, row.finished_at = rt.clock(), None
        session.flush()
        ruleset, _ = active_rules(session, shop_id)
        ruleset = for_shop(ruleset, referral_key(session, rt.config, shop_id))  # referral codes in past orders
        return to_shop(shop_row, rt.config), row.since, dict(row.cursor), \
            Progress("running", row.customers or 0, row.orders or 0, row.total), ruleset


def _run(rt, shop_id, since, wait, report, hold) -> Progress:
    shop, since, cursor, prog, ruleset = _begin(rt, shop_id, since)
    fresh = not cursor  # this run reads the whole history (not continuing a stopped one)
    connector = connectors.get(shop.platform)
    folder = Folder(rt.sessions, shop_id, ruleset.settings, rt.clock())
    retries = 0
    while cursor.get("phase") != "done":
        try:
            for item in connector.history(shop, since, cursor):
                if item.topic is not None:
                    prog.skipped += _parse_into(rt, connector, shop, folder, item)
                if item.record == "customer":
                    prog.customers += 1
                elif item.record == "order":
                    prog.orders += 1
                    prog.total = item.total if item.total is not None else prog.total
                cursor = item.cursor
                # a step of the walk itself (a bulk operation started, a phase done) is stored at once
                if (item.topic is None and item.record is None) or folder.size >= BATCH or folder.full:
                    _commit(rt, shop_id, folder, cursor, prog)
                    hold.extend(HOLD_S)
                    report(prog)
                elif item.record and (prog.customers + prog.orders) % REPORT_EVERY == 0:
                    report(prog)
        except HistoryNotReady as exc:
            cursor = dict(exc.cursor)
            _commit(rt, shop_id, folder, cursor, prog)
            prog.detail = exc.detail
            if not wait:
                enqueue(rt.queue, shop_id, since, delay_s=exc.retry_after, continuing=True)
                prog.retry_after = exc.retry_after
                return _status(prog, "waiting")
            report(prog)
            hold.extend(HOLD_S + exc.retry_after)
            time.sleep(exc.retry_after)
        except StoreError as exc:
            _commit(rt, shop_id, folder, cursor, prog)
            retries += 1
            if not exc.retryable or retries > MAX_STORE_RETRIES:
                return _fail(rt, shop_id, prog, exc.message)
            delay = max(exc.retry_after or 0.0, min(300.0, 2.0 ** retries))
            log.warning("shop %s: import paused (%s); again in %.0fs", shop_id, exc.message, delay)
            if not wait:
                enqueue(rt.queue, shop_id, since, delay_s=delay, continuing=True)
                prog.retry_after = delay
                return _status(prog, "waiting")
            time.sleep(delay)
        else:
            cursor = {"phase": "done"} if cursor.get("phase") != "done" else cursor
    _commit(rt, shop_id, folder, cursor, prog)
    # a fresh run that kept every state it folded sets the timers from them; otherwise they are read
    timers = _set_timers(rt, shop_id, ruleset, folder.states() if fresh else None)
    with rt.sessions.begin() as session:
        row = session.get(ImportRow, shop_id)
        row.status, row.finished_at = "done", rt.clock()
        shop_row = session.get(ShopRow, shop_id)
        # reconciliation continues from the import, not from a day before it
        if shop_row.last_sync_at is None or shop_row.last_sync_at < row.started_at:
            shop_row.last_sync_at = row.started_at
    log.info("shop %s: history imported: %d customers, %d orders, %d skipped, %d timers", shop_id,
             prog.customers, prog.orders, prog.skipped, timers)
    prog.detail = f"{timers} timers set"
    report(_status(prog, "done"))
    return prog


def _status(prog: Progress, status: str) -> Progress:
    prog.status = status
    return prog


def _parse_into(rt, connector, shop, folder: Folder, item) -> int:
    """Parse one record into the folder; 1 when it was malformed and skipped."""
    try:
        events = connector.parse(shop, item.topic, item.payload, lambda oid: folder.customer_of_order(rt.sessions, oid))
    except PayloadError as exc:
        log.warning("shop %s: imported %s skipped: %s", shop.id, item.topic, exc)
        return 1
    folder.add(events)
    return 0


def _commit(rt, shop_id: str, folder: Folder, cursor: dict, prog: Progress) -> None:
    with rt.sessions.begin() as session:
        folder.flush(session)
        row = session.get(ImportRow, shop_id)
        row.cursor, row.customers, row.orders, row.total = dict(cursor), prog.customers, prog.orders, prog.total


def _fail(rt, shop_id: str, prog: Progress, message: str) -> Progress:
    log.error("shop %s: history import failed: %s", shop_id, message)
    with rt.sessions.begin() as session:
        row = session.get(ImportRow, shop_id)
        row.status, row.error, row.finished_at = "failed", message[:2000], rt.clock()
    prog.detail = message
    return _status(prog, "failed")


def _stored_states(rt, shop_id: str) -> Iterator[list[CustomerState]]:
    after = ""
    while True:
        with rt.sessions() as session:
            rows = session.execute(select(CustomerRow.customer_id, CustomerRow.state).where(
                CustomerRow.shop_id == shop_id, CustomerRow.customer_id > after)
                .order_by(CustomerRow.customer_id).limit(CHUNK)).all()
        if not rows:
            return
        after = rows[-1][0]
        yield [state_from_dict(s) for _, s in rows]


def _set_timers(rt, shop_id: str, ruleset, states: list[CustomerState] | None = None) -> int:
    """The timers every customer's (imported) past implies, each set once: of ``states``, or of
    every customer of the shop."""
    from plugin.timers import RQ_TIMER_HORIZON, schedule_timer

    now, created, soon = rt.clock(), 0, []
    pages = _stored_states(rt, shop_id) if states is None else (
        states[i:i + CHUNK] for i in range(0, len(states), CHUNK))
    for page in pages:
        with rt.sessions.begin() as session:
            wanted = [d for s in page for d in implied_timers(s, ruleset, now) if d.kind == Kind.SCHEDULED]
            known = set(session.scalars(select(TimerRow.key).where(
                TimerRow.shop_id == shop_id, TimerRow.key.in_([d.timer.id for d in wanted])))) if wanted else set()
            for d in wanted:
                if d.timer.id not in known:
                    known.add(d.timer.id)
                    session.add(TimerRow(shop_id=shop_id, key=d.timer.id, customer_id=d.customer_id,
                                         wake_at=d.wake_at, event=event_to_dict(d.timer)))
                    created += 1
                    if d.wake_at - now <= RQ_TIMER_HORIZON:
                        soon.append((d.timer.id, d.wake_at))
    for key, wake_at in soon:
        schedule_timer(rt, shop_id, key, wake_at)
    return created
