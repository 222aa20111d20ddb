"""recruitment: candidates' files and their applications (MongoDB `recruitment`).

Purpose: recruitment. Recruitment knows people by e-mail and phone only; the subject is found by
e-mail or by candidate id (the `_id` of the candidate's file, 24 hexadecimal digits), one indexed
equality lookup per value, and the candidate ids found are reported for the other systems.

What it decides, on purpose:
- The phone is not accepted. It is weak (a household shares one) and candidates have no birth
  date, so it could only count together with an e-mail or a candidate id, and then only for files
  that match both: a subset of what the strong identifier alone finds. It would add nothing.
- A file's `applications` array becomes its own dataset, one record per application, keyed by
  (candidate id, job reference, date applied), so that each exported field carries its own
  provenance: what the subject sent (job, date) is portable; the interview notes and the
  recruiter's assessment are the insurer's, derived, and never portable.
- `source` and `agency_name` say where the data came from when it was not collected from the
  subject (a recruitment firm), as GDPR art. 14(2)(f) and 15(1)(g) require.
- E-mails are compared as stored, case-folded: the system keeps them lower-case.

Indexes it expects: candidates(email); `_id` is indexed by MongoDB itself.
"""

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from typing import Any

from bson import ObjectId

from connectors.sdk import Connector, Field, Ident, PermanentError, Query, Record, documents, mongodb
from connectors.sdk import Provenance as P

BATCH = 200  # candidate files per round trip: a file with its CV text is a few KiB

connector = Connector(
    "recruitment",
    store=mongodb("recruitment"),
    accepts=[Ident.EMAIL, Ident.CANDIDATE_ID],
    discovers=[Ident.CANDIDATE_ID],
)

ASSIGNED = Field(P.DERIVED, description="the identifier the insurer gave the candidate's file")
SOURCE = Field(P.OBSERVED, description=(
    "where the file came from: 'direct' when the candidate applied, 'agency' when a recruitment firm"
    " transferred it"))  # fmt: skip
AGENCY = Field(P.OBSERVED, description="the recruitment firm that transferred the file, if any")

candidates = connector.dataset("candidates", activity="recruitment", key="candidate_id", fields={
    "candidate_id": ASSIGNED, "email": P.PROVIDED, "phone": P.PROVIDED, "first_name": P.PROVIDED,
    "last_name": P.PROVIDED, "cv_filename": P.PROVIDED, "cv_text": P.PROVIDED, "source": SOURCE,
    "agency_name": AGENCY, "last_contact_at": P.OBSERVED,
})  # fmt: skip
applications = connector.dataset("applications", activity="recruitment",
                                 key=("candidate_id", "job_ref", "applied_at"), fields={
    "candidate_id": ASSIGNED, "job_ref": P.PROVIDED, "applied_at": P.PROVIDED,
    "status": Field(P.OBSERVED, description="where the application stands: interview, hired, rejected…"),
    "interview_notes": Field(P.DERIVED, description="what the recruiters noted during the interviews"),
    "recruiter_assessment": Field(P.DERIVED, description="the recruiter's opinion of the application"),
})  # fmt: skip

_FILE = {name: 1 for name in candidates.fields if name != "candidate_id"}
_APPLICATIONS = {f"applications.{name}": 1 for name in applications.fields if name != "candidate_id"}


async def subject_files(q: Query, db: Any, projection: Mapping[str, int]) -> AsyncIterator[dict[str, Any]]:
    """The subject's candidate files, each once: one indexed lookup per e-mail and per candidate id."""
    lookups: list[dict[str, Any]] = [
        *({"_id": _object_id(value)} for value in q.values(Ident.CANDIDATE_ID)),
        *({"email": value} for value in q.values(Ident.EMAIL)),
    ]
    seen: set[ObjectId] = set()
    for lookup in lookups:
        async for document in documents(db.candidates, lookup, projection, batch_size=BATCH):
            if document["_id"] not in seen:
                seen.add(document["_id"])
                yield document


@candidates.search
async def find_candidates(q: Query, db: Any) -> AsyncIterator[Record]:
    async for document in subject_files(q, db, _FILE):
        candidate_id = str(document.pop("_id"))
        yield candidates.record(
            {"candidate_id": candidate_id, **document}, discovered={Ident.CANDIDATE_ID: candidate_id}
        )


@applications.search
async def find_applications(q: Query, db: Any) -> AsyncIterator[Record]:
    async for document in subject_files(q, db, _APPLICATIONS):
        candidate_id = str(document["_id"])
        for application in document.get("applications") or ():
            row = {"candidate_id": candidate_id, **application}
            key = f"{candidate_id}/{row.get('job_ref')}/{_instant(row.get('applied_at'))}"
            yield applications.record(row, key=key)


def _object_id(value: str) -> ObjectId:
    if not ObjectId.is_valid(value):  # the service checks candidate ids; a bad one is a broken query
        raise PermanentError("a candidate id is not 24 hexadecimal digits")
    return ObjectId(value)


def _instant(value: object) -> str:
    """A time as ISO 8601 text with its offset: MongoDB's datetimes come naive, in UTC."""
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    isoformat = getattr(value, "isoformat", None)
    return str(isoformat()) if callable(isoformat) else str(value)
