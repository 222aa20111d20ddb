"""The gRPC surface: a thin servicer, the error mapping, and the proto ⇄ domain conversions."""

from dsar_service.api.errors import ErrorMappingInterceptor
from dsar_service.api.servicer import DsarServicer

__all__ = ["DsarServicer", "ErrorMappingInterceptor"]
