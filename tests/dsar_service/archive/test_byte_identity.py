"""The archive format is a contract: the same input gives the same bytes in every file.

The digests below were taken from the archive code before its per-record and per-archive
caches were added (issue 6); a change that alters any file's bytes fails here, and must come
with a new format version rather than a new digest.

"(the whole zip)" pins the container too: how files are deflated is not part of the format (any
ZIP reader inflates them), but a change to it should be deliberate. It changed twice: when small
files got a deflate window fitted to their size, and when levels 1-3 went to ISA-L's deflate
(the same files, inflated).
"""

import hashlib
import io
import zipfile
from datetime import UTC, datetime, timedelta

import orjson
import pyrage
import pytest

from dsar_service.archive import (
    ArchiveBuilder,
    ArchiveReport,
    ArchiveWriter,
    IdentifierReport,
    SystemReport,
)
from dsar_service.crypto import parse_recipient
from dsar_service.model import DatasetInfo, FieldInfo

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
_IDENTITY = pyrage.x25519.Identity.generate()

CLAIM = DatasetInfo(
    "claim",
    "policy_management",
    "claims",
    ("claim_id",),
    tuple(
        FieldInfo(name, provenance, "policy_management", "")
        for name, provenance in (
            ("claim_id", "observed"),
            ("status", "observed"),
            ("care_category", "provided"),
            ("provider_name", "provided"),
            ("diagnosis_code", "provided"),
            ("amount_claimed_cents", "provided"),
            ("amount_reimbursed_cents", "derived"),
        )
    ),
)
VISITS = DatasetInfo(
    "visits",
    "site_audience",
    "visits",
    ("_id",),
    tuple(FieldInfo(n, "observed", "site_audience") for n in ("visitor_id", "site", "started_at", "pages")),
)
CONSENTS = DatasetInfo(
    "cookie_consents",
    "site_audience",
    "",
    ("_id",),
    tuple(FieldInfo(n, "provided", "site_audience") for n in ("visitor_id", "given_at", "categories")),
)

_CELLS: list[object] = [
    "plain",
    "comma, inside",
    'a "quoted" word',
    "line\nbreak",
    "cr\rlf\r\n",
    "",
    "été ✓ 日本",
    0,
    -7,
    2**53 + 1,
    1.5,
    1e-7,
    123456789.125,
    True,
    False,
    None,
    [],
    {},
    [1, "a,b", {"c": None}],
    {"x": '"', "y": [True, 2.25]},
]


def _claims() -> list[bytes]:
    rows = []
    for i in range(60):
        value = _CELLS[i % len(_CELLS)]
        row: dict[str, object] = {
            "claim_id": f"C-{i}",
            "status": ("paid", "rejected", "pending", "no_such_code", None, 3)[i % 6],
            "care_category": ("hospitalization", "optical", "dental")[i % 3],
            "provider_name": value,
            "diagnosis_code": "K35.8" if i % 4 else None,
            "amount_claimed_cents": i * 1000 + 1,
            "amount_reimbursed_cents": value if i % 5 == 0 else i * 800,
        }
        if i % 7 == 3:
            row["undeclared"] = value  # a field the connector did not declare
        if i % 11 == 5:
            row = {k: row[k] for k in reversed(row)}  # another layout
        if i % 13 == 6:
            del row["status"]
        rows.append(orjson.dumps(row))
    return rows


def _visits() -> list[bytes]:
    return [
        orjson.dumps(
            {
                "visitor_id": f"v-{i % 3}",
                "site": ("public", "personal_space", "elsewhere")[i % 3],
                "started_at": f"2024-05-06T10:{i:02d}:00Z",
                "pages": [{"path": f"/p/{j},x", "load_ms": j * 1.25, "ok": j % 2 == 0} for j in range(i % 4)],
            }
        )
        for i in range(40)
    ]


def _consents() -> list[bytes]:
    return [
        orjson.dumps({"visitor_id": f"v-{i}", "given_at": "2024-01-01T00:00:00Z", "categories": _CELLS[i]})
        for i in range(len(_CELLS))
    ] + [
        orjson.dumps({"visitor_id": "v-x", "given_at": '"', "categories": "a\r\nb", "extra": _CELLS[i]})
        for i in range(3)
    ]


def _redaction() -> bytes:
    return orjson.dumps(
        {"dataset": "claim", "record_key": "C-1", "fields_removed": ["provider_name"], "reason": "other"}
    )


def _files(kind: str) -> dict[str, str]:
    recipient = parse_recipient(str(_IDENTITY.to_public()))
    pieces: list[bytes] = []
    builder = ArchiveBuilder(ArchiveWriter([recipient], pieces.append, compresslevel=1, modified=T0),
                             portability=kind == "portability")  # fmt: skip
    inputs = {
        "claims": ((CLAIM,), [("claim", r) for r in _claims()] + [("_redactions", _redaction())]),
        "analytics": ((VISITS, CONSENTS),
                      [("visits", r) for r in _visits()] + [("cookie_consents", r) for r in _consents()]),
    }  # fmt: skip
    systems = []
    for system, (declared, records) in inputs.items():
        builder.begin_system(system, declared)
        for dataset, fields in records:
            builder.json_record(dataset, fields)
        builder.end_json_pass()
        for dataset, fields in records:
            builder.csv_record(dataset, fields)
        datasets = builder.end_system()
        systems.append(SystemReport(system, "", "completed", 1, "", T0, datasets, builder.received))
    systems.append(SystemReport("crm", "", "timed_out", 3, "no answer", None))
    report = ArchiveReport(
        request_id="r-pinned", kind=kind, received_at=T0, generated_at=T0 + timedelta(days=2),
        due_at=T0 + timedelta(days=31), extension_reason="",
        identifiers=(IdentifierReport("email", "j****r", "request"),),
        systems=tuple(systems), redactions=builder.redactions, not_portable=builder.not_portable,
    )  # fmt: skip
    builder.finish(report)
    plaintext = pyrage.decrypt(b"".join(pieces), [_IDENTITY])
    with zipfile.ZipFile(io.BytesIO(plaintext)) as archive:
        files = {name: hashlib.sha256(archive.read(name)).hexdigest() for name in archive.namelist()}
    return {"(the whole zip)": hashlib.sha256(plaintext).hexdigest(), **files}


PINNED: dict[str, dict[str, str]] = {
    "access": {
        "(the whole zip)": "86df9b39f695edda97466c8b09aec8ce8d22f17ed0f2bb38046da853dbf88356",
        "data/claims/claim.json": "5ea72dbace0d8bbfd52897535a3e01a53823925391fb0595dfcb4108651ec197",
        "data/claims/claim.csv": "866eafb0dfe730804636cbd355b7d4961aae3ed845e8e6b97382d273117319a5",
        "schemas/claims/claim.schema.json": "6dd174d9db3b11f8607b012c0d1b30837647e3ec0c50efd9dd18420baad24112",
        "data/analytics/visits.json": "97eedc9bbb3badcd97b88398a67380424732a77635f240d9d055cba16a7ff264",
        "data/analytics/cookie_consents.json": "63ce08862d1c9da2292faf7b25cba69a693bd7baf56ecbb9082a7e8c1048eef7",
        "data/analytics/visits.csv": "07f4617439210ae41b6606c0d56931a2db36baed2e04f89b6513742ca49ea3ae",
        "data/analytics/cookie_consents.csv": "1685928e94482331527353ae6cebb5b6e035db7275e224494396d598f607aa98",
        "schemas/analytics/visits.schema.json": "a70dd9ac56de3a278e2bf1e5219b950c5bac34103ccce6bc6b4d0434eb03496c",
        "schemas/analytics/cookie_consents.schema.json": "3d3d55145b2b6cd5cb6044820bb8bbaa778204b556fdc3786c118a547e62d319",  # noqa: E501
        "index.html": "a8e932286210e3391c647e90edd5bca1c5927e26effd8796a0ae84724d22636b",
        "processing.json": "a53873abe656abe2017f91884bca4d1991d4708be70edf8e5714027a77140c8d",
        "schemas/manifest.schema.json": "3a8555078e1aac10352311b645839935b7e307432b3d4238027c69d8971cad42",
        "manifest.json": "89bac1dec23aaf6b072798e8f5edaa81260a3c55688df30182d05fe5740cd805",
    },
    "portability": {
        "(the whole zip)": "5224a7a8a41b18f412c8c8ee20c0d11c4ecc19bf86b86d14a2bed58c14cab39a",
        "data/claims/claim.json": "9886b3da45cd39a3c0ab3fe835355fcf80e3342b36a024056121d64f51a1c07e",
        "data/claims/claim.csv": "bd9d150e46bef97e4e8bd26bcb8a91ee175481c0a3d5e5e9f154a39f1e66ff16",
        "schemas/claims/claim.schema.json": "bd5b864df976c4e3f7bb198d903d48e93cba4144b331a96f4f3a9a46e0ed74f9",
        "data/analytics/visits.json": "97eedc9bbb3badcd97b88398a67380424732a77635f240d9d055cba16a7ff264",
        "data/analytics/cookie_consents.json": "4298d62bd5bed4b0b64783ed4282e0afe6f38ce2250eb6e2f5e4dc8ebed5da47",
        "data/analytics/visits.csv": "07f4617439210ae41b6606c0d56931a2db36baed2e04f89b6513742ca49ea3ae",
        "data/analytics/cookie_consents.csv": "0452e59426a51ae267bd8eb59eea2a804a37e726dc2cae67c8ead985fd255f52",
        "schemas/analytics/visits.schema.json": "a70dd9ac56de3a278e2bf1e5219b950c5bac34103ccce6bc6b4d0434eb03496c",
        "schemas/analytics/cookie_consents.schema.json": "b92ac2a7f59b1feee9fdbd1160a03cbb3157ebe337e53a3a13064f2584fc0dbe",  # noqa: E501
        "index.html": "a8f9e61c9cc839ecfaddf37afaaed55b43c0a05f94b47b3a48479dc06380415e",
        "processing.json": "a53873abe656abe2017f91884bca4d1991d4708be70edf8e5714027a77140c8d",
        "schemas/manifest.schema.json": "3a8555078e1aac10352311b645839935b7e307432b3d4238027c69d8971cad42",
        "manifest.json": "6997d02592bd910e53dc89fd23b0c53f9deaeef65c77ffcea304b4ad1ba4c1a5",
    },
}


@pytest.mark.parametrize("kind", ["access", "portability"])
def test_every_file_keeps_its_bytes(kind: str) -> None:
    assert _files(kind) == PINNED[kind]


@pytest.mark.parametrize("kind", ["access", "portability"])
def test_a_second_archive_has_the_same_bytes(kind: str) -> None:
    """The per-archive caches (register, fixed files, layouts) change nothing in the next archive."""
    assert _files(kind) == _files(kind)
