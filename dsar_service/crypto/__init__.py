"""Encryption for the service: age archives to the requester's key, and secrets under the master key.

This package is the service's only user of cryptography primitives (besides dsar_common.sealing,
which seals what crosses Kafka).
"""

from .age import CHUNK_SIZE, AgeEncryptor, encrypt
from .keywrap import UnwrapError, context, keyed_digest, open_at_rest, seal_at_rest, unwrap, wrap
from .recipients import Recipient, RecipientError, parse_recipient

__all__ = [
    "CHUNK_SIZE",
    "AgeEncryptor",
    "Recipient",
    "RecipientError",
    "UnwrapError",
    "context",
    "encrypt",
    "keyed_digest",
    "open_at_rest",
    "parse_recipient",
    "seal_at_rest",
    "unwrap",
    "wrap",
]
