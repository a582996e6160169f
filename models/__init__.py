"""SQLModel tables, the database session and the Alembic migrations.

Importing this package registers every table on `SQLModel.metadata`.
"""

from models.activities import Activity, Signup
from models.cases import Case, CaseCounter, CaseEvent
from models.grids import Grid
from models.messages import InboundMessage, ReportDraft, ServiceToken
from models.outbox import OutboxMessage, SchedulerLease
from models.people import ApiToken, Person, PersonGrid
from models.points import PointsEntry, Redemption, RedemptionItem
from models.reports import Media, Report
from models.types import utcnow

__all__ = [
    "Activity",
    "ApiToken",
    "Case",
    "CaseCounter",
    "CaseEvent",
    "Grid",
    "InboundMessage",
    "Media",
    "OutboxMessage",
    "Person",
    "PersonGrid",
    "PointsEntry",
    "Redemption",
    "RedemptionItem",
    "Report",
    "ReportDraft",
    "SchedulerLease",
    "ServiceToken",
    "Signup",
    "utcnow",
]
