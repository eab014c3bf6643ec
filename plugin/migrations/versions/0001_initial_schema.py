"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import plugin.db


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shops',
    sa.Column('id', sa.String(length=64), nullable=False),
    sa.Column('platform', sa.String(length=16), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('api_url', sa.String(length=512), nullable=False),
    sa.Column('secrets', sa.Text(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_sync_at', plugin.db.UTCDateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('platform', 'domain')
    )
    with op.batch_alter_table('shops', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_shops_domain'), ['domain'], unique=False)

    op.create_table('customers',
    sa.Column('shop_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('state', sa.JSON(), nullable=False),
    sa.Column('updated_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shop_id', 'customer_id')
    )
    op.create_table('decisions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('shop_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=32), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('ruleset_version', sa.String(length=64), nullable=False),
    sa.Column('decision', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('shop_id', 'key')
    )
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_decisions_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decisions_rule_id'), ['rule_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_decisions_shop_id'), ['shop_id'], unique=False)

    op.create_table('effects',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('shop_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('decision_key', sa.String(length=512), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('coupon_code', sa.String(length=128), nullable=True),
    sa.Column('message_id', sa.String(length=255), nullable=True),
    sa.Column('store_id', sa.String(length=255), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('shop_id', 'key')
    )
    with op.batch_alter_table('effects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_effects_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_effects_decision_key'), ['decision_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_effects_shop_id'), ['shop_id'], unique=False)

    op.create_table('events_seen',
    sa.Column('shop_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('seen_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shop_id', 'key')
    )
    op.create_table('orders',
    sa.Column('shop_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shop_id', 'order_id')
    )
    op.create_table('rule_sets',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('shop_id', sa.String(length=64), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('shop_id', 'version')
    )
    with op.batch_alter_table('rule_sets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rule_sets_shop_id'), ['shop_id'], unique=False)

    op.create_table('timers',
    sa.Column('shop_id', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=512), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('wake_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('event', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shop_id', 'key')
    )
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_timers_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_timers_wake_at'), ['wake_at'], unique=False)

    op.create_table('unsubscribes',
    sa.Column('shop_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('shop_id', 'customer_id')
    )


def downgrade() -> None:
    op.drop_table('unsubscribes')
    with op.batch_alter_table('timers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_timers_wake_at'))
        batch_op.drop_index(batch_op.f('ix_timers_customer_id'))

    op.drop_table('timers')
    with op.batch_alter_table('rule_sets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rule_sets_shop_id'))

    op.drop_table('rule_sets')
    op.drop_table('orders')
    op.drop_table('events_seen')
    with op.batch_alter_table('effects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_effects_shop_id'))
        batch_op.drop_index(batch_op.f('ix_effects_decision_key'))
        batch_op.drop_index(batch_op.f('ix_effects_customer_id'))

    op.drop_table('effects')
    with op.batch_alter_table('decisions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_decisions_shop_id'))
        batch_op.drop_index(batch_op.f('ix_decisions_rule_id'))
        batch_op.drop_index(batch_op.f('ix_decisions_customer_id'))

    op.drop_table('decisions')
    op.drop_table('customers')
    with op.batch_alter_table('shops', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shops_domain'))

    op.drop_table('shops')
