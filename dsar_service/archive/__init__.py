"""The archive: a ZIP streamed straight into age encryption, and what goes in it.

writer.py, zipstream.py   the streamed, encrypted ZIP, with per-file sizes and hashes; sections
spool.py                  SealedSpool: a section's bytes, sealed in a temporary file until spliced
contents.py               ArchiveBuilder: data as JSON and CSV, schemas, index.html, manifest
shape.py, csvfile.py      rows: portability filter, codes in words; CSV encoding
schema.py                 the data dictionary (JSON Schema) and a validator for its subset
page.py, manifest.py      index.html for a person, manifest.json for a program
verify.py                 `dsar archive verify`: decrypt, check every hash and schema
"""

from .contents import REDACTIONS_DATASET, ArchiveBuilder, ContentError, SystemPart
from .manifest import FORMAT_VERSION, build_manifest
from .page import render_index
from .report import ArchiveReport, DatasetReport, IdentifierReport, Redaction, SystemReport
from .schema import dataset_schema, manifest_schema, validate
from .spool import SealedSpool, SpoolBudget, SpoolChain, SpoolError
from .verify import VerifyError, VerifyReport, decrypt_archive, verify_archive, verify_zip
from .writer import ArchiveDigest, ArchiveWriter, FileEntry, Section, SectionWriter, Splicing
from .zipstream import ZipSection, ZipSplice, ZipStream

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
    "SealedSpool",
    "Section",
    "SectionWriter",
    "Splicing",
    "SpoolBudget",
    "SpoolChain",
    "SpoolError",
    "SystemPart",
    "SystemReport",
    "VerifyError",
    "VerifyReport",
    "ZipSection",
    "ZipSplice",
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
