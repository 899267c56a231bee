"""tickets crews generators plans feedback

Revision ID: 0001
Revises:
Create Date: 2026-11-23 10:49:07.632334
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('crew',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('skills', sa.JSON(), nullable=False),
    sa.Column('home_lat', sa.Float(), nullable=False),
    sa.Column('home_lng', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lng', sa.Float(), nullable=True),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shift_start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('shift_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('can_tow_generator', sa.Boolean(), nullable=False),
    sa.Column('unavailable', sa.Boolean(), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('branch', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('crew', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_crew_region'), ['region'], unique=False)

    op.create_table('dispatch_plan',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('solve_seconds', sa.Float(), nullable=False),
    sa.Column('late_tickets', sa.Integer(), nullable=False),
    sa.Column('total_travel_minutes', sa.Float(), nullable=False),
    sa.Column('objective', sa.Float(), nullable=False),
    sa.Column('trigger', sa.String(length=40), nullable=False),
    sa.Column('stats', sa.JSON(), nullable=False),
    sa.Column('unassigned', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('dispatch_plan', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispatch_plan_region'), ['region'], unique=False)

    op.create_table('incident',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('cause', sa.String(), nullable=True),
    sa.Column('center_lat', sa.Float(), nullable=True),
    sa.Column('center_lng', sa.Float(), nullable=True),
    sa.Column('customers_affected', sa.Integer(), nullable=False),
    sa.Column('etr', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_status'), ['status'], unique=False)

    op.create_table('ticket',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('priority', sa.String(length=20), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('summary', sa.String(length=500), nullable=False),
    sa.Column('description', sa.String(), nullable=True),
    sa.Column('address', sa.String(length=500), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lng', sa.Float(), nullable=True),
    sa.Column('area_type', sa.String(length=10), nullable=False),
    sa.Column('branch', sa.String(length=64), nullable=True),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('required_skills', sa.JSON(), nullable=False),
    sa.Column('needs_generator', sa.Boolean(), nullable=False),
    sa.Column('critical_load_kw', sa.Float(), nullable=True),
    sa.Column('customers_affected', sa.Integer(), nullable=False),
    sa.Column('account_number', sa.String(length=64), nullable=True),
    sa.Column('contact_name', sa.String(length=200), nullable=True),
    sa.Column('contact_phone', sa.String(length=32), nullable=True),
    sa.Column('phone_last4', sa.String(length=4), nullable=True),
    sa.Column('preferred_channels', sa.JSON(), nullable=False),
    sa.Column('client_request_id', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('respond_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolve_by', sa.DateTime(timezone=True), nullable=True),
    sa.Column('responded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('eta', sa.DateTime(timezone=True), nullable=True),
    sa.Column('etr', sa.DateTime(timezone=True), nullable=True),
    sa.Column('power_restored_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('duplicate_of_id', sa.Integer(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['duplicate_of_id'], ['ticket.id'], ),
    sa.ForeignKeyConstraint(['incident_id'], ['incident.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('client_request_id')
    )
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_account_number'), ['account_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_branch'), ['branch'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_contact_phone'), ['contact_phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_region'), ['region'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_resolve_by'), ['resolve_by'], unique=False)
        batch_op.create_index(batch_op.f('ix_ticket_respond_by'), ['respond_by'], unique=False)
        batch_op.create_index('ix_ticket_status_priority', ['status', 'priority'], unique=False)

    op.create_table('feedback',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('score', sa.Integer(), nullable=False),
    sa.Column('comment', sa.String(length=2000), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ticket_id')
    )
    op.create_table('mobile_generator',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('capacity_kw', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lng', sa.Float(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('assigned_ticket_id', sa.Integer(), nullable=True),
    sa.Column('region', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assigned_ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('mobile_generator', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mobile_generator_region'), ['region'], unique=False)

    op.create_table('ticket_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('note', sa.String(), nullable=True),
    sa.Column('source', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('ticket_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_event_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('assignment',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('crew_id', sa.Integer(), nullable=False),
    sa.Column('generator_id', sa.Integer(), nullable=True),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('planned_arrival', sa.DateTime(timezone=True), nullable=False),
    sa.Column('planned_finish', sa.DateTime(timezone=True), nullable=False),
    sa.Column('pinned', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.String(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['crew_id'], ['crew.id'], ),
    sa.ForeignKeyConstraint(['generator_id'], ['mobile_generator.id'], ),
    sa.ForeignKeyConstraint(['plan_id'], ['dispatch_plan.id'], ),
    sa.ForeignKeyConstraint(['ticket_id'], ['ticket.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_assignment_active'), ['active'], unique=False)
        batch_op.create_index('ix_assignment_active_crew', ['active', 'crew_id', 'sequence'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignment_crew_id'), ['crew_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignment_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_assignment_ticket_id'), ['ticket_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('assignment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_assignment_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_assignment_plan_id'))
        batch_op.drop_index(batch_op.f('ix_assignment_crew_id'))
        batch_op.drop_index('ix_assignment_active_crew')
        batch_op.drop_index(batch_op.f('ix_assignment_active'))

    op.drop_table('assignment')
    with op.batch_alter_table('ticket_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_event_ticket_id'))

    op.drop_table('ticket_event')
    with op.batch_alter_table('mobile_generator', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mobile_generator_region'))

    op.drop_table('mobile_generator')
    op.drop_table('feedback')
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index('ix_ticket_status_priority')
        batch_op.drop_index(batch_op.f('ix_ticket_respond_by'))
        batch_op.drop_index(batch_op.f('ix_ticket_resolve_by'))
        batch_op.drop_index(batch_op.f('ix_ticket_region'))
        batch_op.drop_index(batch_op.f('ix_ticket_kind'))
        batch_op.drop_index(batch_op.f('ix_ticket_incident_id'))
        batch_op.drop_index(batch_op.f('ix_ticket_created_at'))
        batch_op.drop_index(batch_op.f('ix_ticket_contact_phone'))
        batch_op.drop_index(batch_op.f('ix_ticket_branch'))
        batch_op.drop_index(batch_op.f('ix_ticket_account_number'))

    op.drop_table('ticket')
    with op.batch_alter_table('incident', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_status'))

    op.drop_table('incident')
    with op.batch_alter_table('dispatch_plan', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispatch_plan_region'))

    op.drop_table('dispatch_plan')
    with op.batch_alter_table('crew', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_crew_region'))

    op.drop_table('crew')
