"""All settings, from the environment, with documented defaults (embedded demo values).

| variable | default | meaning |
|---|---|---|
| SHOPIFY_API_KEY | "" | the Shopify app's client id |
| SHOPIFY_API_SECRET | "" | the app's client secret: signs webhooks; "new,old" during a rotation |
| REDIS_URL | redis://127.0.0.1:6379/0 | queue, dedupe and locks |
| DATABASE_URL | sqlite:///var/keepwell.db | shops, customer state, ledger, rule sets |
| SMTP_URL | smtp://127.0.0.1:8025 | smtp://, smtp+starttls://user:pass@host:587, smtps://... |
| KEEPWELL_SECRET_KEY | a fixed development key | encrypts stored secrets, signs unsubscribe links; "new,old" to rotate |
| KEEPWELL_APP_URL | http://127.0.0.1:5000 | the public URL stores call |
| KEEPWELL_MAIL_FROM | Keepwell <noreply@localhost> | sender of emails |
| KEEPWELL_MAX_WEBHOOK_BYTES | 1048576 | larger webhook bodies are refused with 413 |
| KEEPWELL_EDGE_REDIS_TIMEOUT | 1.0 | seconds the web app waits for Redis before answering 503 (0: no limit) |
| KEEPWELL_QUEUE | keepwell | RQ queue name (and Redis key prefix) |
| KEEPWELL_SHOPIFY_DEEP_HISTORY | 0 | 1: ask Shopify stores for read_all_orders at install, so the history import reaches past 60 days |
| KEEPWELL_FRAME_ANCESTORS | 'none' | who may frame pages of non-Shopify shops (CSP sources, e.g. https://shop.example); Shopify shops: their own admin |
| KEEPWELL_ALLOW_PRIVATE_STORES | 0 | development only: 1 lets WooCommerce store URLs reach loopback and private networks |
| KEEPWELL_TWILIO_API_URL | https://api.twilio.com | Twilio's REST API base URL (the local SMS sink for demos and tests) |
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

DEV_SECRET_KEY = "keepwell-development-key-do-not-use-in-production"


def _list(value: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in value.split(",") if v.strip())


def _database_url(url: str) -> str:
    """Hosting platforms hand out postgres:// URLs; SQLAlchemy wants a driver named."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


@dataclass(frozen=True)
class Config:
    shopify_api_key: str = ""
    shopify_api_secrets: tuple[str, ...] = ()
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "sqlite:///var/keepwell.db"
    smtp_url: str = "smtp://127.0.0.1:8025"
    secret_keys: tuple[str, ...] = (DEV_SECRET_KEY,)
    app_url: str = "http://127.0.0.1:5000"
    mail_from: str = "Keepwell <noreply@localhost>"
    max_webhook_bytes: int = 1024 * 1024
    edge_redis_timeout: float = 1.0
    queue: str = "keepwell"
    shopify_deep_history: bool = False
    allow_private_stores: bool = False
    frame_ancestors: str = "'none'"
    twilio_api_url: str = "https://api.twilio.com"
    retention_days: int = 3 * 365  # a customer quiet this long is erased (plugin.data_requests)
    api_events_per_minute: int = 600  # per shop's API key: POST /api/v1/events answers 429 beyond it
    extra: dict = field(default_factory=dict, hash=False)  # a dict cannot be hashed; Config keys the lru_cache in plugin.runtime

    @property
    def secret_key(self) -> str:
        return self.secret_keys[0]

    @classmethod
    def from_env(cls, env=None, **overrides) -> "Config":
        """Read the environment (``env`` defaults to os.environ); keyword overrides win."""
        env = os.environ if env is None else env
        values = dict(
            shopify_api_key=env.get("SHOPIFY_API_KEY", ""),
            shopify_api_secrets=_list(env.get("SHOPIFY_API_SECRET", "")),
            redis_url=env.get("REDIS_URL", cls.redis_url),
            database_url=_database_url(env.get("DATABASE_URL", cls.database_url)),
            smtp_url=env.get("SMTP_URL", cls.smtp_url),
            secret_keys=_list(env.get("KEEPWELL_SECRET_KEY", "")) or (DEV_SECRET_KEY,),
            app_url=env.get("KEEPWELL_APP_URL", cls.app_url).rstrip("/"),
            mail_from=env.get("KEEPWELL_MAIL_FROM", cls.mail_from),
            max_webhook_bytes=int(env.get("KEEPWELL_MAX_WEBHOOK_BYTES", cls.max_webhook_bytes)),
            edge_redis_timeout=float(env.get("KEEPWELL_EDGE_REDIS_TIMEOUT", cls.edge_redis_timeout)),
            queue=env.get("KEEPWELL_QUEUE", cls.queue),
            shopify_deep_history=env.get("KEEPWELL_SHOPIFY_DEEP_HISTORY", "0").strip().lower() in ("1", "true", "yes"),
            frame_ancestors=env.get("KEEPWELL_FRAME_ANCESTORS", "").strip() or cls.frame_ancestors,
            allow_private_stores=env.get("KEEPWELL_ALLOW_PRIVATE_STORES", "").strip().lower() in ("1", "true", "yes"),
            retention_days=int(env.get("KEEPWELL_RETENTION_DAYS", cls.retention_days)),
            api_events_per_minute=int(env.get("KEEPWELL_API_EVENTS_PER_MINUTE", cls.api_events_per_minute)),
            twilio_api_url=env.get("KEEPWELL_TWILIO_API_URL", cls.twilio_api_url).rstrip("/"),
        )
        values.update(overrides)
        return cls(**values)
