"""The gRPC surface: a thin servicer, the error mapping, and the proto ⇄ domain conversions."""

from dsar_service.api.errors import map_errors
from dsar_service.api.guards import GuardInterceptor
from dsar_service.api.servicer import DsarServicer

__all__ = ["DsarServicer", "GuardInterceptor", "map_errors"]
