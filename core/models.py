"""Imports every table module so that SQLModel.metadata knows all tables (Alembic and tests use it)."""

from api.revocation import TokenRevocation  # noqa: F401
from crews.models import Crew, MobileGenerator  # noqa: F401
from customers.models import (  # noqa: F401
    Customer,
    Feedback,
    IncidentScope,
    NetworkDevice,
    Notification,
    NotificationDelivery,
    PlannedOutage,
    TicketCustomer,
    TicketPublication,
    TrackingAttempt,
)
from dispatch.models import Assignment, DispatchPlan, Incident, Ticket, TicketEvent  # noqa: F401
from mobile_sync.models import ClientMutation, CrewBreadcrumb, Device, SyncChange, SyncCounter  # noqa: F401
from quality.models import CallbackTask, CallerRisk, QualityTask, TicketKeyword, TicketOwner  # noqa: F401
