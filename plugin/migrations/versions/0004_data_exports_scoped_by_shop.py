"""data exports scoped by shop

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('data_exports', schema=None) as batch_op:
        batch_op.create_unique_constraint('uq_data_exports_shop_id_id', ['shop_id', 'id'])


def downgrade() -> None:
    with op.batch_alter_table('data_exports', schema=None) as batch_op:
        batch_op.drop_constraint('uq_data_exports_shop_id_id', type_='unique')

