"""ArchiveBuilder: data in JSON and CSV, the data dictionary, index.html and the manifest (access, portability)."""

import csv
import io
import json
import tracemalloc
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from archive_support import AgeKey

from dsar_service.archive import (
    ArchiveBuilder,
    ArchiveReport,
    ArchiveWriter,
    ContentError,
    IdentifierReport,
    SystemReport,
    verify_zip,
)
from dsar_service.crypto import parse_recipient
from dsar_service.model import DatasetInfo, FieldInfo

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)

DUNNING = DatasetInfo(
    "dunning_event",
    "policy_management",
    "",
    ("id",),
    (
        FieldInfo("policy_number", "observed", "policy_management"),
        FieldInfo("occurred_at", "observed", "policy_management"),
        FieldInfo("step", "derived", "policy_management", "reminder, formal notice, suspension or termination"),
        FieldInfo("automated", "derived", "policy_management", "decided without human review"),
    ),
)
PERSON = DatasetInfo(
    "insured_person",
    "policy_management",
    "",
    ("person_id",),
    (
        FieldInfo("person_id", "derived", "policy_management", "an identifier the insurer assigned"),
        FieldInfo("last_name", "provided", "policy_management"),
        FieldInfo("marital_status", "provided", "policy_management"),
        FieldInfo("tags", "provided", "policy_management"),
    ),
)
CANDIDATES = DatasetInfo(
    "candidates", "recruitment", "", ("candidate_id",), (FieldInfo("email", "provided", "recruitment"),)
)

PERSON_ROW = {"person_id": "p-1", "last_name": "Moreau, <b>J</b>", "marital_status": "married", "tags": ["a", {"b": 1}]}
STEPS = [{"policy_number": "FA-1", "occurred_at": f"2024-01-0{i}T10:00:00Z", "step": s, "automated": True}
         for i, s in enumerate(("reminder", "formal_notice", "weird_code"), 1)]  # fmt: skip
REDACTION = {"dataset": "insured_person", "record_key": "FA-1/spouse-1", "fields_removed": ["person_id"],
             "reason": "another person <script>alert(1)</script>"}  # fmt: skip


def _records() -> list[tuple[str, str, bytes]]:
    rows = [("policy", "insured_person", orjson.dumps(PERSON_ROW))]
    rows += [("policy", "dunning_event", orjson.dumps(step)) for step in STEPS]
    rows += [("policy", "_redactions", orjson.dumps(REDACTION))]
    rows += [("recruitment", "candidates", orjson.dumps({"email": "j@example.fr"}))]
    return rows


def _build(
    age_key: AgeKey, decrypt: Callable[[bytes], bytes], kind: str, failed: str | None = None, extension: str = ""
) -> zipfile.ZipFile:
    pieces: list[bytes] = []
    builder = ArchiveBuilder(ArchiveWriter([parse_recipient(age_key.recipient)], pieces.append),
                             portability=kind == "portability")  # fmt: skip
    declared = {"policy": (PERSON, DUNNING), "recruitment": (CANDIDATES,)}
    systems = []
    for system in ("policy", "recruitment", "claims"):
        if system == failed or system == "claims":
            status = "timed_out" if system == "claims" else "failed"
            systems.append(SystemReport(system, "", status, 3, "no answer after 3 attempt(s)", None))
            continue
        records = [(d, f) for s, d, f in _records() if s == system]
        builder.begin_system(system, declared[system])
        for dataset, fields in records:
            builder.json_record(dataset, fields)
        builder.end_json_pass()
        for dataset, fields in records:
            builder.csv_record(dataset, fields)
        datasets = builder.end_system()
        systems.append(SystemReport(system, "", "completed", 1, "", T0, datasets, builder.received))
    report = ArchiveReport(
        request_id="r-1", kind=kind, received_at=T0, generated_at=T0 + timedelta(days=2),
        due_at=T0 + timedelta(days=31 + (61 if extension else 0)), extension_reason=extension,
        identifiers=(IdentifierReport("email", "j****r", "request"), IdentifierReport("person_id", "p****1", "policy")),
        systems=tuple(systems), redactions=builder.redactions, not_portable=builder.not_portable,
    )  # fmt: skip
    builder.finish(report)
    return zipfile.ZipFile(io.BytesIO(decrypt(b"".join(pieces))))


def test_access_archive_layout_and_verification(age_key: AgeKey, age_decrypt: Callable[[bytes], bytes]) -> None:
    files = _build(age_key, age_decrypt, "access")
    assert sorted(files.namelist()) == sorted([
        "data/policy/insured_person.json", "data/policy/insured_person.csv",
        "data/policy/dunning_event.json", "data/policy/dunning_event.csv",
        "schemas/policy/insured_person.schema.json", "schemas/policy/dunning_event.schema.json",
        "data/recruitment/candidates.json", "data/recruitment/candidates.csv",
        "schemas/recruitment/candidates.schema.json",
        "index.html", "processing.json", "schemas/manifest.schema.json", "manifest.json",
    ])  # fmt: skip
    report = verify_zip(_bytes(files))
    assert report.ok, report.problems
    assert report.data_files == 3 and report.records == 5


def test_codes_are_decoded_next_to_the_raw_value(age_key: AgeKey, age_decrypt: Callable[[bytes], bytes]) -> None:
    files = _build(age_key, age_decrypt, "access")
    steps = json.loads(files.read("data/policy/dunning_event.json"))
    labels = [(s["step"], s["step_label"]) for s in steps]
    assert labels == [
        ("reminder", "Reminder"),
        ("formal_notice", "Formal notice (mise en demeure)"),
        ("weird_code", None),
    ]
    assert list(steps[0]) == ["policy_number", "occurred_at", "step", "step_label", "automated"]
    rows = list(csv.DictReader(io.StringIO(files.read("data/policy/dunning_event.csv").decode())))
    assert rows[1]["step_label"] == "Formal notice (mise en demeure)" and rows[2]["step_label"] == ""
    assert rows[0]["automated"] == "true"


def test_csv_cells_hold_nested_values_as_json(age_key: AgeKey, age_decrypt: Callable[[bytes], bytes]) -> None:
    files = _build(age_key, age_decrypt, "access")
    (row,) = csv.DictReader(io.StringIO(files.read("data/policy/insured_person.csv").decode()))
    assert json.loads(row["tags"]) == ["a", {"b": 1}]
    assert row["last_name"] == "Moreau, <b>J</b>" and row["marital_status_label"] == "Married"


def test_the_schema_is_a_data_dictionary(age_key: AgeKey, age_decrypt: Callable[[bytes], bytes]) -> None:
    files = _build(age_key, age_decrypt, "access")
    schema = json.loads(files.read("schemas/policy/dunning_event.schema.json"))
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    step = schema["items"]["properties"]["step"]
    assert step == {"type": "string", "description": "reminder, formal notice, suspension or termination",
                    "x-provenance": "derived", "x-activity": "policy_management"}  # fmt: skip
    assert schema["items"]["properties"]["step_label"]["x-label-of"] == "step"
    assert schema["items"]["additionalProperties"] is False
    assert "automated" in schema["items"]["required"]


def test_portability_keeps_only_what_article_20_covers(age_key: AgeKey, age_decrypt: Callable[[bytes], bytes]) -> None:
    files = _build(age_key, age_decrypt, "portability")
    names = files.namelist()
    assert "data/policy/dunning_event.json" in names  # its observed fields remain
    assert not [n for n in names if "recruitment" in n], "recruitment rests on legitimate interest"
    steps = json.loads(files.read("data/policy/dunning_event.json"))
    assert set(steps[0]) == {"policy_number", "occurred_at"}
    (person,) = json.loads(files.read("data/policy/insured_person.json"))
    assert "person_id" not in person
    for name in (n for n in names if n.startswith("schemas/policy/")):
        properties = json.loads(files.read(name))["items"]["properties"]
        assert all(p.get("x-provenance") != "derived" for p in properties.values()), name
    manifest = json.loads(files.read("manifest.json"))
    assert manifest["portability"] == {"not_covered_activities": ["recruitment"]}
    page = files.read("index.html").decode()
    assert "What portability covers" in page and "Recruitment management" in page
    assert "What this system holds about you is not covered by the right to portability" in page
    assert verify_zip(_bytes(files)).ok


def test_unfinished_systems_are_said_in_words(age_key: AgeKey, age_decrypt: Callable[[bytes], bytes]) -> None:
    files = _build(age_key, age_decrypt, "access", failed="recruitment")
    manifest = json.loads(files.read("manifest.json"))
    assert manifest["systems"]["claims"]["status"] == "timed_out"
    assert "did not answer in time" in manifest["systems"]["claims"]["status_text"]
    assert manifest["systems"]["recruitment"]["records"] == 0
    page = files.read("index.html").decode()
    assert "This answer is incomplete" in page
    assert "Did not answer in time; its data is not in this archive (after 3 attempts)." in page
    assert "Could not be searched" in page


def test_the_page_escapes_and_says_the_deadline(age_key: AgeKey, age_decrypt: Callable[[bytes], bytes]) -> None:
    files = _build(age_key, age_decrypt, "access", extension="many systems, & <complex> request")
    page = files.read("index.html").decode()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "many systems, &amp; &lt;complex&gt; request" in page and "extended" in page
    assert "FA-1/spouse-1" in page and "dpo@henner.com" in page and "CNIL" in page
    assert "<script" not in page.lower() and "<link" not in page and "src=" not in page


def test_a_dataset_sent_in_two_runs_is_refused(age_key: AgeKey) -> None:
    builder = ArchiveBuilder(ArchiveWriter([parse_recipient(age_key.recipient)], lambda _: None), portability=False)
    builder.begin_system("policy", (PERSON, DUNNING))
    builder.json_record("insured_person", orjson.dumps(PERSON_ROW))
    builder.json_record("dunning_event", orjson.dumps(STEPS[0]))
    with pytest.raises(ContentError, match="two separate runs"):
        builder.json_record("insured_person", orjson.dumps(PERSON_ROW))


def test_a_system_without_declarations_keeps_what_it_sent(
    age_key: AgeKey, age_decrypt: Callable[[bytes], bytes]
) -> None:
    pieces: list[bytes] = []
    builder = ArchiveBuilder(ArchiveWriter([parse_recipient(age_key.recipient)], pieces.append), portability=False)
    builder.begin_system("legacy", ())
    for i in range(3):
        builder.json_record("things", orjson.dumps({"n": i, "label": None if i else "x"}))
    builder.end_json_pass()
    for i in range(3):
        builder.csv_record("things", orjson.dumps({"n": i, "label": None if i else "x"}))
    (dataset,) = builder.end_system()
    builder.finish(ArchiveReport("r", "access", T0, T0, T0, "", (), (SystemReport("legacy", "", "completed", 1, "",
                                                                                   T0, (dataset,)),), ()))  # fmt: skip
    report = verify_zip(age_decrypt(b"".join(pieces)))
    assert report.ok, report.problems


def test_memory_does_not_grow_with_the_records(age_key: AgeKey) -> None:
    def peak(count: int) -> int:
        builder = ArchiveBuilder(ArchiveWriter([parse_recipient(age_key.recipient)], lambda _: None),
                                 portability=False)  # fmt: skip
        row = orjson.dumps({**STEPS[0], "policy_number": "FA-" + "9" * 200})
        tracemalloc.start()
        builder.begin_system("policy", (DUNNING,))
        for _ in range(count):
            builder.json_record("dunning_event", row)
        builder.end_json_pass()
        for _ in range(count):
            builder.csv_record("dunning_event", row)
        builder.end_system()
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return top

    small, large = peak(2_000), peak(40_000)  # ~0.6 MB, then ~12 MB of plaintext
    assert large < small + 512 * 1024, (small, large)


def _bytes(files: zipfile.ZipFile) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as copy:
        for info in files.infolist():
            copy.writestr(info.filename, files.read(info.filename))
    return out.getvalue()
