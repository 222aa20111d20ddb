"""The container health probe: asks a dsar service's gRPC health service whether it is serving.

It is the image's HEALTHCHECK (Docker, compose). Kubernetes does not need it: its native `grpc:` probes
speak the same protocol (grpc.health.v1.Health/Check). It is a standalone script, copied into the image
at /opt/dsar/healthcheck.py and run with the image's Python, which has grpcio and grpcio-health-checking.

    python healthcheck.py [--address HOST:PORT] [--service NAME] [--timeout SECONDS]
                          [--ca FILE [--cert FILE --key FILE]]

The address defaults to DSAR_HEALTH_LISTEN, else DSAR_LISTEN, else 127.0.0.1:50051; a wildcard host
(0.0.0.0, ::) is asked on loopback. `--service ""` (the default) asks for the server as a whole.
Plaintext by default; `--ca` switches to TLS and `--cert`/`--key` add a client certificate (mTLS).

Exit status: 0 when SERVING, 1 when not serving or unreachable, 2 on bad usage (unreadable files).
"""

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

DEFAULT_ADDRESS = "127.0.0.1:50051"
WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "[::]": "[::1]", "::": "[::1]"}


def probe_address(environ: Mapping[str, str]) -> str:
    """Where to ask: the health listener if there is one, else the API listener, wildcards on loopback."""
    address = environ.get("DSAR_HEALTH_LISTEN") or environ.get("DSAR_LISTEN") or DEFAULT_ADDRESS
    host, _, port = address.rpartition(":")
    return f"{WILDCARD_HOSTS.get(host, host)}:{port}"


def check(address: str, service: str, timeout: float, credentials: grpc.ChannelCredentials | None) -> str:
    """The serving status's name (SERVING, NOT_SERVING, …); raises grpc.RpcError when unreachable."""
    channel = grpc.secure_channel(address, credentials) if credentials else grpc.insecure_channel(address)
    with channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def tls_credentials(ca: str | None, cert: str | None, key: str | None) -> grpc.ChannelCredentials | None:
    """TLS credentials from PEM files, or None for plaintext (no --ca)."""
    if not ca:
        return None
    chain = Path(cert).read_bytes() if cert else None
    private_key = Path(key).read_bytes() if key else None
    return grpc.ssl_channel_credentials(Path(ca).read_bytes(), private_key, chain)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run one check; print one line; return the exit status."""
    parser = argparse.ArgumentParser(description="Ask a dsar service's gRPC health service.")
    parser.add_argument("--address", help="host:port (default: $DSAR_HEALTH_LISTEN, $DSAR_LISTEN, 127.0.0.1:50051)")
    parser.add_argument("--service", default="", help="the service name to ask about ('' = the whole server)")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument("--ca", help="PEM CA bundle: talk TLS and verify the server against it")
    parser.add_argument("--cert", help="PEM client certificate chain (mTLS; needs --ca and --key)")
    parser.add_argument("--key", help="PEM client private key")
    args = parser.parse_args(argv)
    address = args.address or probe_address(os.environ if environ is None else environ)
    try:
        credentials = tls_credentials(args.ca, args.cert, args.key)
    except OSError as error:
        print(f"unhealthy: cannot read TLS material ({error.strerror})", file=sys.stderr)
        return 2
    try:
        status = check(address, args.service, args.timeout, credentials)
    except grpc.RpcError as error:
        code = error.code() if isinstance(error, grpc.Call) else None
        print(f"unhealthy: {address} did not answer ({code.name if code else 'error'})", file=sys.stderr)
        return 1
    if status != "SERVING":
        print(f"unhealthy: {address} is {status}", file=sys.stderr)
        return 1
    print(f"healthy: {address} is SERVING")
    return 0


if __name__ == "__main__":
    sys.exit(main())
