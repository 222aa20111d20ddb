"""Who may call: the caller's identity from its client certificate, its roles from a policy file.

The policy is a TOML file naming callers by their certificate's common name:

    [callers.portal-backend]          # the request portal's backend
    roles = ["submit", "read", "download"]

    [callers.dpo-console]
    roles = ["submit", "read", "download", "admin"]

Roles: `submit` (Submit), `read` (Get, List, Watch, ListSystems), `download` (DownloadArchive),
`admin` (Cancel, RetrySystem, ExtendDeadline). Health checking and reflection need no role; any
other method is refused (deny by default: a method added later is closed until given a role).
In insecure mode (loopback only, for development) the one caller is `local-developer`, with
every role.
"""

import contextlib
import contextvars
import tomllib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from dsar_common.settings import SettingsError
from dsar_service.api.guards import Context
from dsar_service.errors import PermissionDenied


class Role(Enum):
    SUBMIT = "submit"
    READ = "read"
    DOWNLOAD = "download"
    ADMIN = "admin"


_SERVICE = "/dsar.v1.DsarService/"
RPC_ROLES: Mapping[str, Role] = {
    _SERVICE + "Submit": Role.SUBMIT,
    _SERVICE + "Get": Role.READ,
    _SERVICE + "List": Role.READ,
    _SERVICE + "Watch": Role.READ,
    _SERVICE + "ListSystems": Role.READ,
    _SERVICE + "DownloadArchive": Role.DOWNLOAD,
    _SERVICE + "Cancel": Role.ADMIN,
    _SERVICE + "RetrySystem": Role.ADMIN,
    _SERVICE + "ExtendDeadline": Role.ADMIN,
}
# Open to every caller that passed TLS: health checking and server reflection (no data).
OPEN_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.v1alpha.ServerReflection/")
LOCAL_DEVELOPER = "local-developer"

current_caller: contextvars.ContextVar[str] = contextvars.ContextVar("current_caller", default="")


@dataclass(frozen=True)
class AccessPolicy:
    """Roles per caller (certificate common name)."""

    roles: Mapping[str, frozenset[Role]]

    @classmethod
    def load(cls, path: Path) -> "AccessPolicy":
        try:
            data = tomllib.loads(path.read_text())
            callers = data["callers"]
            return cls({name: frozenset(Role(r) for r in entry["roles"]) for name, entry in callers.items()})
        except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, AttributeError) as error:
            raise SettingsError(f"the authorization policy {path} is unreadable: {error}") from error

    @classmethod
    def local_development(cls) -> "AccessPolicy":
        return cls({LOCAL_DEVELOPER: frozenset(Role)})

    def allows(self, caller: str, role: Role) -> bool:
        return role in self.roles.get(caller, frozenset())


def caller_of(context: Context, insecure: bool) -> str:
    """The caller's name: its client certificate's common name (verified by TLS)."""
    if insecure:
        return LOCAL_DEVELOPER
    names = context.auth_context().get("x509_common_name") or []
    return names[0].decode() if names else ""


class Authorizer:
    """The guard that lets a call through only when its caller holds the RPC's role."""

    def __init__(self, policy: AccessPolicy, *, insecure: bool) -> None:
        self._policy = policy
        self._insecure = insecure

    @contextlib.asynccontextmanager
    async def __call__(self, method: str, context: Context) -> AsyncIterator[None]:
        caller = caller_of(context, self._insecure)
        role = RPC_ROLES.get(method)
        if role is None and not method.startswith(OPEN_SERVICES):
            raise PermissionDenied(f"{method} is not a method callers may use")  # deny by default
        if role is not None and not self._policy.allows(caller, role):
            raise PermissionDenied(f"caller {caller or '(unidentified)'} may not {role.value}")
        # Each call runs in a context of its own: no reset (a cancelled stream would reset it from
        # another context, which contextvars refuse).
        current_caller.set(caller)
        yield
