"""The service's own PostgreSQL: pool, migrations, queries, change feed. The only asyncpg importer here."""

from dsar_service.store.audit import AuditLog, AuditReport
from dsar_service.store.changes import ChangeFeed
from dsar_service.store.database import open_pool
from dsar_service.store.requests import NewRequest, Page, RequestSecrets, RequestStore, SystemRow

__all__ = [
    "AuditLog",
    "AuditReport",
    "ChangeFeed",
    "NewRequest",
    "Page",
    "RequestSecrets",
    "RequestStore",
    "SystemRow",
    "open_pool",
]
