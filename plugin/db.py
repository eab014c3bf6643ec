"""Storage: SQLAlchemy 2 models and the session factory. Every row is scoped by shop.

SQLite by default (the embedded demo), PostgreSQL through DATABASE_URL; the schema is managed
by Alembic migrations in plugin/migrations (``keepwell db upgrade``).
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from sqlalchemy import (JSON, Boolean, DateTime, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint,
                        create_engine, event, func, text)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored; use aware UTC datetimes")
        return value.astimezone(timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value


class Base(DeclarativeBase):
    pass


class ShopRow(Base):
    __tablename__ = "shops"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    domain: Mapped[str] = mapped_column(String(255), index=True)
    api_url: Mapped[str] = mapped_column(String(512))
    #: encrypted JSON: {"credentials": the platform's credentials document, "webhook_secrets", "referral_key",
    #: "sms": the SMS provider's settings when the shop has them}
    secrets: Mapped[str] = mapped_column(Text)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_sync_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    __table_args__ = (UniqueConstraint("platform", "domain"),)


class RuleSetRow(Base):
    __tablename__ = "rule_sets"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    engine_version: Mapped[str] = mapped_column(String(64), default="", index=True)  # RuleSet.version it compiles to
    files: Mapped[dict] = mapped_column(JSON)  # file name -> YAML text (templates included)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("shop_id", "version"),)


class CustomerRow(Base):
    __tablename__ = "customers"
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    #: The last digits of the state's ``sms_phone`` (plugin.sms_consent.phones.phone_key): finds the
    #: customers a text message came from without reading every state.
    phone_key: Mapped[str | None] = mapped_column(String(16), nullable=True)
    __table_args__ = (Index("ix_customers_shop_id_phone_key", "shop_id", "phone_key"),)


class OrderIndexRow(Base):
    """Which customer an order belongs to (refund webhooks do not say)."""

    __tablename__ = "orders"
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    order_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128))


class EventSeenRow(Base):
    __tablename__ = "events_seen"
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class DecisionRow(Base):
    """The decision ledger: one row per decision key, written before any side effect."""

    __tablename__ = "decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(512))
    rule_id: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # touch | suppressed
    reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))  # pending | done | failed | suppressed
    event_id: Mapped[str] = mapped_column(String(255))
    ruleset_version: Mapped[str] = mapped_column(String(64), default="")
    decision: Mapped[dict] = mapped_column(JSON)  # the full decision, as data
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    __table_args__ = (UniqueConstraint("shop_id", "key"),)


class EffectRow(Base):
    """One side effect of a touch (a coupon, an email, a tag), executed at most once."""

    __tablename__ = "effects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    key: Mapped[str] = mapped_column(String(512))
    decision_key: Mapped[str] = mapped_column(String(512), index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | done | failed
    coupon_code: Mapped[str | None] = mapped_column(String(128), nullable=True)
    message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    store_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    segments: Mapped[int | None] = mapped_column(Integer, nullable=True)  # a text message: segments sent
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 6), nullable=True)  # ... at the shop's price per segment
    cost_currency: Mapped[str | None] = mapped_column(String(3), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    __table_args__ = (UniqueConstraint("shop_id", "key"),)


class TimerRow(Base):
    """A scheduled timer (delay, lapse, occasion, deferral): durable beside RQ's scheduler."""

    __tablename__ = "timers"
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    wake_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    event: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | fired | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # times armed again
    error: Mapped[str | None] = mapped_column(Text, nullable=True)  # why it was armed again, or failed


class DataExportRow(Base):
    """A customer's data, gathered for a privacy request (e.g. Shopify customers/data_request)."""

    __tablename__ = "data_exports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop_id: Mapped[str] = mapped_column(String(64), index=True)  # kept after the shop is gone
    customer_id: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[str] = mapped_column(String(64), default="")
    data: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    __table_args__ = (UniqueConstraint("shop_id", "id", name="uq_data_exports_shop_id_id"),)  # scoped like every table


class UnsubscribeRow(Base):
    """A one-click unsubscribe, and its write-back to the store (pending, done, skipped, failed)."""

    __tablename__ = "unsubscribes"
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    store_status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending", index=True)
    store_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    store_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    store_tried_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SmsConsentRow(Base):
    """The newest SMS consent change Keepwell itself made (a STOP or START texted back, the personal
    page, Twilio's "unsubscribed recipient" answer): effective at once for sending, before the
    backlog folds its event, and written back to the store (store_status as for unsubscribes)."""

    __tablename__ = "sms_consent_changes"
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    subscribed: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(String(32), default="")  # twilio, page, provider, ...
    store_status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending", index=True)
    store_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    store_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    store_tried_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AttributionRow(Base):
    """A paid order that redeemed a Keepwell coupon, credited to the touch that issued it.

    Written by the worker with the order.paid event, once per (order, decision). Refunds and
    cancellations stay in the customer's state; reports read them from there.
    """

    __tablename__ = "attributions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    order_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(128), index=True)  # who placed the order
    decision_key: Mapped[str] = mapped_column(String(512), index=True)
    rule_id: Mapped[str] = mapped_column(String(64), index=True)
    variant: Mapped[str | None] = mapped_column(String(64), nullable=True)
    coupon_code: Mapped[str] = mapped_column(String(128))
    revenue: Mapped[Decimal] = mapped_column(Numeric(18, 4), default=Decimal(0), server_default="0")  # order total
    currency: Mapped[str] = mapped_column(String(8), default="", server_default="")
    discount: Mapped[Decimal] = mapped_column(Numeric(18, 4), default=Decimal(0), server_default="0")  # the coupon's cost
    ordered_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, server_default=text("CURRENT_TIMESTAMP"))
    __table_args__ = (UniqueConstraint("shop_id", "order_id", "decision_key"),)


class ImportRow(Base):
    """A shop's history import: where it stands, so a crashed import continues where it stopped."""

    __tablename__ = "imports"
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))  # running | done | failed
    since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cursor: Mapped[dict] = mapped_column(JSON, default=dict)  # the connector's place in the store's history
    customers: Mapped[int] = mapped_column(Integer, default=0)  # records folded so far
    orders: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int | None] = mapped_column(Integer, nullable=True)  # records the store announced
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PageRow(Base):
    """A customer's personal page for one touch (``/p/<token>``, plugin/pages): the token's
    random part, when it expires or was revoked, and what the customer did there."""

    __tablename__ = "pages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    shop_id: Mapped[str] = mapped_column(ForeignKey("shops.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[str] = mapped_column(String(128), index=True)
    touch: Mapped[str] = mapped_column(String(512))  # the decision key of the touch that links to it
    rule_id: Mapped[str] = mapped_column(String(64), index=True)
    nonce: Mapped[str] = mapped_column(String(32), unique=True)  # 128 random bits, in every link to it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)  # first counted open
    answers: Mapped[list] = mapped_column(JSON, default=list)  # [{"type", "at", "summary"}], newest last
    forwarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    forward_message_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    __table_args__ = (UniqueConstraint("shop_id", "customer_id", "touch"),)


# Attribution finds a redeemed coupon by its code, in any case (WooCommerce lower-cases codes).
Index("ix_effects_shop_coupon_code", EffectRow.shop_id, func.lower(EffectRow.coupon_code))


_engines: dict[str, Engine] = {}


def _forget_pooled_connections() -> None:
    """In a forked child: start new pools without closing the parent's connections, which the
    parent still uses (SQLAlchemy's pattern for os.fork; gunicorn --preload and any forking
    worker fork). A shared server connection would interleave two processes' protocol state."""
    for eng in _engines.values():
        eng.dispose(close=False)


os.register_at_fork(after_in_child=_forget_pooled_connections)


def _sqlite_pragmas(dbapi_conn, _record):
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer (web + worker)
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")  # with WAL: durable across crashes of the process, fast commits
    cur.close()


def get_engine(url: str, pre_ping: bool = True) -> Engine:
    """One pooled engine per database URL in this process. ``pre_ping``: test each connection
    with a round trip when it is checked out (the web app and the CLI); the worker goes without
    it (a connection the server dropped fails the job, and RQ's retry gets a fresh one)."""
    sqlite = url.startswith("sqlite:///")
    key = url if pre_ping or sqlite else f"{url} (no pre-ping)"
    eng = _engines.get(key)
    if eng is None:
        if sqlite:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            eng = create_engine(url, connect_args={"timeout": 10})
            event.listen(eng, "connect", _sqlite_pragmas)
        else:
            eng = create_engine(url, pool_pre_ping=pre_ping)
        _engines[key] = eng
    return eng


def sessions(url: str, pre_ping: bool = True) -> sessionmaker:
    return sessionmaker(get_engine(url, pre_ping), expire_on_commit=False)


def alembic_config(url: str, secret_keys: tuple[str, ...] | None = None):
    """Alembic's configuration for the database at ``url``; migrations that re-encrypt stored
    secrets use ``secret_keys`` (KEEPWELL_SECRET_KEY when None)."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if secret_keys:
        cfg.attributes["secret_keys"] = tuple(secret_keys)
    return cfg


def upgrade(url: str, secret_keys: tuple[str, ...] | None = None) -> None:
    """Bring the database schema to the newest migration."""
    from alembic import command

    command.upgrade(alembic_config(url, secret_keys), "head")
