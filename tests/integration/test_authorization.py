"""Who may call: mutual TLS, the caller's identity from its certificate, roles from a policy file."""

import datetime as dt
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dsar.v1 import dsar_pb2, dsar_pb2_grpc
from dsar_common.settings import Settings, SettingsError
from dsar_service.app import check_listen_address, running_service

Key = ec.EllipticCurvePrivateKey


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject: str, key: Key, issuer: tuple[str, Key] | None, *, server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if server:
        san = x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        )
        builder = builder.add_extension(san, critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(item: x509.Certificate | Key) -> bytes:
    if isinstance(item, x509.Certificate):
        return item.public_bytes(serialization.Encoding.PEM)
    return item.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


class Pki:
    def __init__(self, folder: Path, ca_name: str = "dsar-test-ca") -> None:
        self.folder = folder
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca = _certificate(ca_name, self.ca_key, None)
        self.ca_file = self._write("ca.pem", _pem(self.ca))

    def _write(self, name: str, data: bytes) -> Path:
        path = self.folder / name
        path.write_bytes(data)
        return path

    def issue(self, name: str, *, server: bool = False) -> tuple[bytes, bytes]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(
            name, key, (self.ca.subject.rfc4514_string().removeprefix("CN="), self.ca_key), server=server
        )
        return _pem(key), _pem(cert)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
async def secure_port(settings: Settings, pki: Pki) -> AsyncIterator[int]:
    key, cert = pki.issue("dsar-service", server=True)
    policy = pki.folder / "policy.toml"
    policy.write_text(
        '[callers.portal-backend]\nroles = ["submit", "read", "download"]\n\n[callers.auditor]\nroles = ["read"]\n'
    )
    secure = settings.with_values(
        insecure=False,
        listen="127.0.0.1:0",
        tls_key_file=str(pki._write("server.key", key)),
        tls_cert_file=str(pki._write("server.pem", cert)),
        tls_client_ca_file=str(pki.ca_file),
        authz_policy_file=str(policy),
    )
    async with running_service(secure) as running:
        yield running.port


def channel(port: int, pki: Pki, client: tuple[bytes, bytes] | None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca_file.read_bytes(),
        private_key=client[0] if client else None,
        certificate_chain=client[1] if client else None,
    )
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)


async def test_a_caller_gets_only_the_roles_its_certificate_is_granted(secure_port: int, pki: Pki) -> None:
    async with channel(secure_port, pki, pki.issue("auditor")) as ch:
        stub = dsar_pb2_grpc.DsarServiceStub(ch)
        await stub.ListSystems(dsar_pb2.ListSystemsRequest())  # read: granted
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Submit(dsar_pb2.SubmitRequest(request_key="x"))
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "auditor may not submit" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as admin:
            await stub.Cancel(dsar_pb2.CancelRequest(request_id="00000000-0000-0000-0000-000000000000"))
        assert admin.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_a_granted_caller_reaches_the_service(secure_port: int, pki: Pki) -> None:
    async with channel(secure_port, pki, pki.issue("portal-backend")) as ch:
        stub = dsar_pb2_grpc.DsarServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.Submit(dsar_pb2.SubmitRequest(request_key="portal:1"))
        assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT, "authorized, then validated"


async def test_an_unknown_caller_is_refused(secure_port: int, pki: Pki) -> None:
    async with channel(secure_port, pki, pki.issue("someone-else")) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await dsar_pb2_grpc.DsarServiceStub(ch).ListSystems(dsar_pb2.ListSystemsRequest())
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_no_certificate_or_a_foreign_one_cannot_connect(secure_port: int, pki: Pki, tmp_path: Path) -> None:
    foreign = Pki(tmp_path, ca_name="another-ca").issue("portal-backend")
    for client in (None, foreign):
        async with channel(secure_port, pki, client) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await dsar_pb2_grpc.DsarServiceStub(ch).ListSystems(dsar_pb2.ListSystemsRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


def test_insecure_mode_binds_loopback_only(settings: Settings) -> None:
    check_listen_address(settings.with_values(insecure=True, listen="127.0.0.1:50051"))
    check_listen_address(settings.with_values(insecure=True, listen="[::1]:50051"))
    for address in ("0.0.0.0:50051", "10.1.2.3:50051", "example.org:50051"):
        with pytest.raises(SettingsError, match="refuses to bind"):
            check_listen_address(settings.with_values(insecure=True, listen=address))
    with pytest.raises(SettingsError, match="DSAR_TLS_CERT_FILE"):
        check_listen_address(settings.with_values(insecure=False, tls_cert_file=""))
