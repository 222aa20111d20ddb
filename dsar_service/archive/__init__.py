"""The archive: a ZIP streamed straight into age encryption, and what goes in it.

writer.py, zipstream.py   the streamed, encrypted ZIP, with per-file sizes and hashes
contents.py               ArchiveBuilder: data as JSON and CSV, schemas, index.html, manifest
shape.py, csvfile.py      rows: portability filter, codes in words; CSV encoding
schema.py                 the data dictionary (JSON Schema) and a validator for its subset
page.py, manifest.py      index.html for a person, manifest.json for a program
verify.py                 `dsar archive verify`: decrypt, check every hash and schema
"""

from .contents import REDACTIONS_DATASET, ArchiveBuilder, ContentError
from .manifest import FORMAT_VERSION, build_manifest
from .page import render_index
from .report import ArchiveReport, DatasetReport, IdentifierReport, Redaction, SystemReport
from .schema import dataset_schema, manifest_schema, validate
from .verify import VerifyError, VerifyReport, decrypt_archive, verify_archive, verify_zip
from .writer import ArchiveDigest, ArchiveWriter, FileEntry
from .zipstream import ZipStream

__all__ = [
    "FORMAT_VERSION",
    "REDACTIONS_DATASET",
    "ArchiveBuilder",
    "ArchiveDigest",
    "ArchiveReport",
    "ArchiveWriter",
    "ContentError",
    "DatasetReport",
    "FileEntry",
    "IdentifierReport",
    "Redaction",
    "SystemReport",
    "VerifyError",
    "VerifyReport",
    "ZipStream",
    "build_manifest",
    "dataset_schema",
    "decrypt_archive",
    "manifest_schema",
    "render_index",
    "validate",
    "verify_archive",
    "verify_zip",
]
