"""The recruitment connector against the conformance kit, on a MongoDB-protocol server with the generated population.

The expected records are derived from the population's documents, independently of the connector:
a person's candidate file (keyed by its `_id`) and one record per application in it, keyed
`<candidate id>/<job reference>/<date applied, ISO 8601>` as the connector documents. The demo
subject's come from `population.subject_rows("recruitment")`; the former candidate's (known to
recruitment only, through an agency) from `population.rows("recruitment")`.

Recruitment accepts the e-mail and the candidate id only: the household phone and the namesake's
name, which the files also hold, must find nothing. The server is the one the kit picks:
`DSAR_TEST_MONGODB_URL`, or an embedded SecantusDB.
"""

import datetime as dt
from collections.abc import Iterable, Iterator

import pytest
from _population_cases import (  # this folder is on sys.path (pytest prepend import mode)
    DEMO,
    MONGO_STREAM_RECORDS,
    POPULATION,
    WORLD_NEGATIVES,
    Row,
    demo_rows,
    full_name,
    insert_batches,
    mongo_database,
    rows,
)
from bson import ObjectId

from connectors import recruitment
from connectors.sdk import Ident
from connectors.testing.kit import ConformanceSuite, Expected, NegativeCase, SeededStore, SubjectCase
from connectors.testing.population import create_mongo_indexes, load_population

pytestmark = pytest.mark.integration

HEAVY_EMAIL = "heavy.candidate@example.org"
APPLICATIONS_PER_FILE = 10
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def file_records(files: Iterable[Row]) -> Expected:
    """The candidate files and their applications, as the records the connector owes."""
    listed = list(files)
    return {
        "candidates": [str(f["_id"]) for f in listed],
        "applications": [
            f"{f['_id']}/{a['job_ref']}/{a['applied_at'].isoformat()}" for f in listed for a in f["applications"]
        ],
    }


FORMER = POPULATION.former_candidate
FORMER_FILES = rows(POPULATION, "recruitment", "candidates", lambda f: str(f["_id"]) == FORMER.candidate_id)
assert len(FORMER_FILES) == FORMER.expected_counts["recruitment"]["candidates"]


class TestRecruitmentConformance(ConformanceSuite):
    connector = recruitment.connector
    subjects = (
        SubjectCase(
            "demo subject",
            {
                Ident.EMAIL: DEMO.email,
                Ident.CANDIDATE_ID: DEMO.candidate_id,
                Ident.PHONE: DEMO.phone,  # on his file, and his wife's and children's
                Ident.FULL_NAME: full_name(DEMO.last_name, DEMO.first_name),  # shared with the namesake
                Ident.BIRTH_DATE: DEMO.birth_date.isoformat(),  # recruitment keeps none
                Ident.PERSON_ID: DEMO.person_id,  # recruitment knows none
            },
            records=file_records(demo_rows("recruitment", "candidates")),
        ),
        SubjectCase(
            "former candidate",
            {
                Ident.EMAIL: FORMER.email,
                Ident.CANDIDATE_ID: FORMER.candidate_id,
                Ident.PHONE: FORMER.phone,
                Ident.FULL_NAME: full_name(FORMER.last_name, FORMER.first_name),
            },
            records=file_records(FORMER_FILES),
        ),
    )
    negatives = (
        *WORLD_NEGATIVES,
        NegativeCase("unknown candidate id", {Ident.CANDIDATE_ID: "0123456789abcdef01234567"}),
    )
    stream_records = MONGO_STREAM_RECORDS  # not 100,000: SecantusDB inserts are slow (see _population_cases)

    async def seed(self, store: SeededStore) -> None:
        async with mongo_database(store) as db:
            await load_population(POPULATION, {}, {"recruitment": db})

    async def seed_many(self, store: SeededStore, n: int) -> SubjectCase:
        """`n` applications in `n / 10` files under one e-mail: a file holds its applications in one
        document (16 MiB at most), so volume comes from files; records are files plus applications."""
        files = max(1, n // APPLICATIONS_PER_FILE)
        async with mongo_database(store) as db:
            await create_mongo_indexes(db, "recruitment")
            await insert_batches(db.candidates, _files(files))
        return SubjectCase("heavy candidate", {Ident.EMAIL: HEAVY_EMAIL},
                           records={"candidates": files, "applications": files * APPLICATIONS_PER_FILE})  # fmt: skip


def _files(count: int) -> Iterator[Row]:
    """`count` candidate files of the same person, each with its applications."""
    for i in range(count):
        applied = T0 + dt.timedelta(days=i)
        yield {
            "_id": ObjectId(), "email": HEAVY_EMAIL, "phone": "+33600000006", "first_name": "Henri",
            "last_name": "Lourd", "cv_filename": f"CV_Henri_Lourd_{i}.pdf", "cv_text": "Henri Lourd\nExpérience",
            "source": "agency", "agency_name": "Talents & Co", "last_contact_at": applied,
            "applications": [{"job_ref": f"REF-HEAVY-{i:06d}-{j}", "applied_at": applied, "status": "rejected",
                              "interview_notes": "Entretien de 45 minutes.",
                              "recruiter_assessment": "Profil solide."} for j in range(APPLICATIONS_PER_FILE)],
        }  # fmt: skip
