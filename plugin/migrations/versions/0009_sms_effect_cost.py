"""effects: what a text message cost (segments, price)

A text message's effect records how many segments it went out as and what they cost at the
shop's price per segment, so the per-rule ROI counts SMS spend. Other effects leave them empty.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('effects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('segments', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cost', sa.Numeric(precision=12, scale=6), nullable=True))
        batch_op.add_column(sa.Column('cost_currency', sa.String(length=3), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('effects', schema=None) as batch_op:
        batch_op.drop_column('cost_currency')
        batch_op.drop_column('cost')
        batch_op.drop_column('segments')
