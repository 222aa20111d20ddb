"""The authorization guard: roles per RPC, deny by default, health and reflection open."""

from typing import Any

import pytest

from dsar_service.api.auth import LOCAL_DEVELOPER, RPC_ROLES, AccessPolicy, Authorizer, Role
from dsar_service.errors import PermissionDenied


class FakeContext:
    def __init__(self, common_name: str) -> None:
        self._name = common_name

    def auth_context(self) -> dict[str, list[bytes]]:
        return {"x509_common_name": [self._name.encode()]} if self._name else {}


async def call(authorizer: Authorizer, method: str, caller: str) -> None:
    context: Any = FakeContext(caller)
    async with authorizer(method, context):
        pass


async def test_every_rpc_of_the_api_has_a_role() -> None:
    from dsar.v1 import dsar_pb2

    methods = {f"/dsar.v1.DsarService/{m.name}" for m in dsar_pb2.DESCRIPTOR.services_by_name["DsarService"].methods}
    assert methods == set(RPC_ROLES)


async def test_roles_decide_and_unknown_methods_are_denied() -> None:
    authorizer = Authorizer(AccessPolicy({"auditor": frozenset({Role.READ})}), insecure=False)
    await call(authorizer, "/dsar.v1.DsarService/Get", "auditor")
    await call(authorizer, "/grpc.health.v1.Health/Check", "")
    await call(authorizer, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", "")
    for method, caller in (
        ("/dsar.v1.DsarService/Submit", "auditor"),
        ("/dsar.v1.DsarService/Get", ""),
        ("/dsar.v1.DsarService/SomethingNew", "auditor"),
        ("/other.Service/Method", "auditor"),
    ):
        with pytest.raises(PermissionDenied):
            await call(authorizer, method, caller)


async def test_insecure_mode_is_one_local_developer_with_every_role() -> None:
    authorizer = Authorizer(AccessPolicy.local_development(), insecure=True)
    for method in RPC_ROLES:
        await call(authorizer, method, "ignored")
    assert AccessPolicy.local_development().roles[LOCAL_DEVELOPER] == frozenset(Role)
