"""The client side of dsar: a DsarService client and the helpers the `dsar` command line is made of.

- DsarClient: one method per RPC over a grpc.aio channel, errors turned into ClientErrors;
- build_submit_request / SubjectFields / read_recipient_file: command-line input to a SubmitRequest;
- follow / make_view / LiveView / LogView: live per-system progress of a request;
- save_archive: a download written atomically, verified against its announced size and SHA-256;
- the _render functions: requests and systems as lines of text (never personal data);
- generate_identity / decrypt_file: the requester's side of age (the demo, tests);
- summarize_archive / summary_lines: a decrypted archive in numbers (files, records per dataset).
"""

from ._age import AgeError, AgeIdentity, decrypt_file, generate_identity, parse_identity
from ._client import DEFAULT_TIMEOUT_SECONDS, DsarClient, open_channel
from ._download import save_archive
from ._errors import ClientError, DownloadError, ServiceError, ServiceUnavailable, UsageError, translate
from ._render import (
    FINAL_REQUEST_STATES,
    UNSUCCESSFUL_REQUEST_STATES,
    human_bytes,
    parse_request_state,
    request_details,
    request_line,
    request_state_name,
    system_info_line,
    system_lines,
    to_json,
)
from ._submit import KINDS, SubjectFields, build_submit_request, read_recipient_file
from ._summary import ArchiveSummary, summarize_archive, summary_lines
from ._watch import LiveView, LogView, ProgressView, follow, make_view

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "FINAL_REQUEST_STATES",
    "KINDS",
    "UNSUCCESSFUL_REQUEST_STATES",
    "AgeError",
    "AgeIdentity",
    "ArchiveSummary",
    "ClientError",
    "DownloadError",
    "DsarClient",
    "LiveView",
    "LogView",
    "ProgressView",
    "ServiceError",
    "ServiceUnavailable",
    "SubjectFields",
    "UsageError",
    "build_submit_request",
    "decrypt_file",
    "follow",
    "generate_identity",
    "human_bytes",
    "make_view",
    "open_channel",
    "parse_identity",
    "parse_request_state",
    "read_recipient_file",
    "request_details",
    "request_line",
    "request_state_name",
    "save_archive",
    "summarize_archive",
    "summary_lines",
    "system_info_line",
    "system_lines",
    "to_json",
    "translate",
]
