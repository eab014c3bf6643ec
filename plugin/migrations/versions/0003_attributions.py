"""attributions: paid orders that redeemed a Keepwell coupon

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""
from alembic import op
import sqlalchemy as sa
import plugin.db


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attributions',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('shop_id', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.String(length=64), nullable=False),
    sa.Column('customer_id', sa.String(length=128), nullable=False),
    sa.Column('decision_key', sa.String(length=512), nullable=False),
    sa.Column('rule_id', sa.String(length=64), nullable=False),
    sa.Column('variant', sa.String(length=64), nullable=True),
    sa.Column('coupon_code', sa.String(length=128), nullable=False),
    sa.Column('revenue', sa.Numeric(precision=18, scale=4), server_default='0', nullable=False),
    sa.Column('currency', sa.String(length=8), server_default='', nullable=False),
    sa.Column('discount', sa.Numeric(precision=18, scale=4), server_default='0', nullable=False),
    sa.Column('ordered_at', plugin.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', plugin.db.UTCDateTime(timezone=True), server_default=sa.text('CURRENT_TIMESTAMP'), nullable=False),
    sa.ForeignKeyConstraint(['shop_id'], ['shops.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('shop_id', 'order_id', 'decision_key')
    )
    with op.batch_alter_table('attributions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attributions_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attributions_decision_key'), ['decision_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_attributions_ordered_at'), ['ordered_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_attributions_rule_id'), ['rule_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attributions_shop_id'), ['shop_id'], unique=False)

    op.create_index('ix_effects_shop_coupon_code', 'effects', ['shop_id', sa.text('lower(coupon_code)')], unique=False)


def downgrade() -> None:
    op.drop_index('ix_effects_shop_coupon_code', table_name='effects')
    with op.batch_alter_table('attributions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attributions_shop_id'))
        batch_op.drop_index(batch_op.f('ix_attributions_rule_id'))
        batch_op.drop_index(batch_op.f('ix_attributions_ordered_at'))
        batch_op.drop_index(batch_op.f('ix_attributions_decision_key'))
        batch_op.drop_index(batch_op.f('ix_attributions_customer_id'))

    op.drop_table('attributions')
