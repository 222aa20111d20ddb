"""Support for the archive tests: the age key they decrypt with, and synthetic load.

`fill` writes JSON records with no personal data. Each carries 100 random bytes as hex, so the
archive compresses about 2:1 and a leak of ciphertext would show as well as a leak of plaintext.
"""

import random
from dataclasses import dataclass
from pathlib import Path

from dsar_service.archive import ArchiveWriter


@dataclass(frozen=True)
class AgeKey:
    """An age X25519 key pair: the recipient text and the identity file (and its secret line)."""

    recipient: str
    identity_file: Path
    secret: str


def fill(writer: ArchiveWriter, path: str, megabytes: int) -> None:
    """Write one JSON array of about `megabytes` MB of ~330-byte records at `path`."""
    rng = random.Random(path)
    writer.open_json_array(path)
    written, i = 0, 0
    while written < megabytes * 1_000_000:
        token = rng.randbytes(100).hex().encode()
        item = b'{"i": %d, "page": "/espace-personnel/contrats", "token": "%s"}' % (i, token)
        writer.write_json_item(item)
        written += len(item)
        i += 1
    writer.close_json_array()
