"""shops: platform credentials as one document

Each shop's encrypted secrets held its platform's credentials (access_token, refresh_token and
their expiry times for Shopify; consumer_key and consumer_secret for WooCommerce) as fields
beside Keepwell's own (webhook_secrets, referral_key), every shop carrying every platform's
fields. They now form one ``credentials`` document, in the shape the platform's package declares.
The secrets are re-encrypted, so this needs the keys they were stored with (KEEPWELL_SECRET_KEY,
or the keys ``plugin.db.upgrade`` is given); it stops, changing nothing, when one cannot decrypt.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""
from alembic import context, op
import sqlalchemy as sa

from plugin import secrets


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

#: Keepwell's own secrets of a shop: not the platform's credentials.
OWN = ("webhook_secrets", "referral_key")
#: What every shop's secrets held before this revision, whatever its platform.
FLAT_DEFAULTS = {"access_token": "", "consumer_key": "", "consumer_secret": ""}

shops = sa.table("shops", sa.column("id", sa.String), sa.column("secrets", sa.Text))


def _keys() -> tuple[str, ...]:
    keys = context.config.attributes.get("secret_keys")
    if not keys:
        from plugin.config import Config

        keys = Config.from_env().secret_keys
    return tuple(keys)


def _rewrite(change) -> None:
    keys, bind = _keys(), op.get_bind()
    for shop_id, stored in bind.execute(sa.select(shops.c.id, shops.c.secrets)).all():
        document = change(secrets.decrypt(keys, stored))
        if document is not None:
            bind.execute(shops.update().where(shops.c.id == shop_id).values(secrets=secrets.encrypt(keys, document)))


def _nested(flat: dict) -> dict | None:
    if "credentials" in flat:
        return None  # already one document
    credentials = {k: v for k, v in flat.items() if k not in OWN and v not in ("", None)}
    return {"credentials": credentials, **{k: flat[k] for k in OWN if k in flat}}


def _flat(nested: dict) -> dict | None:
    if "credentials" not in nested:
        return None
    rest = {k: v for k, v in nested.items() if k != "credentials"}
    return {**FLAT_DEFAULTS, **nested["credentials"], **rest}


def upgrade() -> None:
    _rewrite(_nested)


def downgrade() -> None:
    _rewrite(_flat)
