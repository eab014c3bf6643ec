"""unsubscribes: write-back to the store

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""
from alembic import op
import sqlalchemy as sa
import plugin.db


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Unsubscribes recorded before this revision were never written back: they start pending.
    with op.batch_alter_table('unsubscribes', schema=None) as batch_op:
        batch_op.add_column(sa.Column('store_status', sa.String(length=16), server_default='pending', nullable=False))
        batch_op.add_column(sa.Column('store_attempts', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('store_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('store_tried_at', plugin.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_unsubscribes_store_status'), ['store_status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('unsubscribes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_unsubscribes_store_status'))
        batch_op.drop_column('store_tried_at')
        batch_op.drop_column('store_error')
        batch_op.drop_column('store_attempts')
        batch_op.drop_column('store_status')
