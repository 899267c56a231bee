"""mobile sync: devices, change log and counter, client mutation ledger, GPS breadcrumbs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 11:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('device',
    sa.Column('id', sa.String(length=100), nullable=False),
    sa.Column('crew_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_skew_seconds', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['crew_id'], ['crew.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_crew_id'), ['crew_id'], unique=False)

    op.create_table('sync_counter',
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )

    op.create_table('sync_change',
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('topic', sa.String(length=10), nullable=False),
    sa.Column('crew_id', sa.Integer(), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('seq')
    )
    with op.batch_alter_table('sync_change', schema=None) as batch_op:
        batch_op.create_index('ix_sync_change_topic_crew_seq', ['topic', 'crew_id', 'seq'], unique=False)

    op.create_table('client_mutation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=100), nullable=False),
    sa.Column('client_mutation_id', sa.String(length=100), nullable=False),
    sa.Column('crew_id', sa.Integer(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=True),
    sa.Column('note', sa.String(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lng', sa.Float(), nullable=True),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('skew_seconds', sa.Float(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('applied', sa.Boolean(), nullable=False),
    sa.Column('outcome', sa.String(length=40), nullable=True),
    sa.Column('error_code', sa.String(length=20), nullable=True),
    sa.Column('error_message', sa.String(), nullable=True),
    sa.Column('error_field', sa.String(length=100), nullable=True),
    sa.Column('event_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], ),
    sa.ForeignKeyConstraint(['event_id'], ['ticket_event.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id', 'client_mutation_id', name='uq_client_mutation_device_cmid')
    )
    with op.batch_alter_table('client_mutation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_client_mutation_crew_id'), ['crew_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_client_mutation_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('crew_breadcrumb',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('crew_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.String(length=100), nullable=False),
    sa.Column('mutation_id', sa.Integer(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lng', sa.Float(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['crew_id'], ['crew.id'], ),
    sa.ForeignKeyConstraint(['mutation_id'], ['client_mutation.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mutation_id')
    )
    with op.batch_alter_table('crew_breadcrumb', schema=None) as batch_op:
        batch_op.create_index('ix_crew_breadcrumb_crew_at', ['crew_id', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('crew_breadcrumb', schema=None) as batch_op:
        batch_op.drop_index('ix_crew_breadcrumb_crew_at')
    op.drop_table('crew_breadcrumb')
    with op.batch_alter_table('client_mutation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_client_mutation_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_client_mutation_crew_id'))
    op.drop_table('client_mutation')
    with op.batch_alter_table('sync_change', schema=None) as batch_op:
        batch_op.drop_index('ix_sync_change_topic_crew_seq')
    op.drop_table('sync_change')
    op.drop_table('sync_counter')
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_crew_id'))
    op.drop_table('device')
