"""SMS consent: Keepwell's own changes (STOP, START, ...) and their write-back; customers found by phone

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa
import plugin.db


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'sms_consent_changes',
        sa.Column('shop_id', sa.String(length=64), nullable=False),
        sa.Column('customer_id', sa.String(length=128), nullable=False),
        sa.Column('subscribed', sa.Boolean(), nullable=False),
        sa.Column('at', plugin.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=32), nullable=False),
        sa.Column('store_status', sa.String(length=16), server_default='pending', nullable=False),
        sa.Column('store_attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('store_error', sa.Text(), nullable=True),
        sa.Column('store_tried_at', plugin.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('shop_id', 'customer_id'),
    )
    op.create_index(op.f('ix_sms_consent_changes_store_status'), 'sms_consent_changes', ['store_status'], unique=False)
    # Customers stored before this revision have no phone in their state (it came with SMS).
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('phone_key', sa.String(length=16), nullable=True))
        batch_op.create_index('ix_customers_shop_id_phone_key', ['shop_id', 'phone_key'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_index('ix_customers_shop_id_phone_key')
        batch_op.drop_column('phone_key')
    op.drop_index(op.f('ix_sms_consent_changes_store_status'), table_name='sms_consent_changes')
    op.drop_table('sms_consent_changes')
