"""pages: the customers' personal pages (/p/<token>)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa
import plugin.db


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pages',
        sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
        sa.Column('shop_id', sa.String(length=64), nullable=False),
        sa.Column('customer_id', sa.String(length=128), nullable=False),
        sa.Column('touch', sa.String(length=512), nullable=False),
        sa.Column('rule_id', sa.String(length=64), nullable=False),
        sa.Column('nonce', sa.String(length=32), nullable=False),
        sa.Column('created_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', plugin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('opened_at', plugin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('answers', sa.JSON(), nullable=False),
        sa.Column('forwarded_at', plugin.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('forward_message_id', sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('nonce'),
        sa.UniqueConstraint('shop_id', 'customer_id', 'touch'),
    )
    with op.batch_alter_table('pages', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pages_shop_id'), ['shop_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pages_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_pages_rule_id'), ['rule_id'], unique=False)


def downgrade() -> None:
    op.drop_table('pages')
