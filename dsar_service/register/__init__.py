"""The register of processing activities, and the words that decode internal codes.

    register = load_register()               # register.json: activities, rights, contacts, versioned
    register.activity("policy_management")   # purposes, legal bases, recipients, retention, ...
    labels = load_labels()                   # labels.json: codes in words, dataset titles

Both are data files shipped with the package; this package imports nothing from the service.
"""

from ._labels import DatasetLabel, Labels, load_labels
from ._model import (
    Activity,
    AutomatedDecision,
    Contact,
    LegalBasis,
    Register,
    RegisterError,
    Retention,
    Right,
    Transfers,
    load_register,
)

__all__ = [
    "Activity",
    "AutomatedDecision",
    "Contact",
    "DatasetLabel",
    "Labels",
    "LegalBasis",
    "Register",
    "RegisterError",
    "Retention",
    "Right",
    "Transfers",
    "load_labels",
    "load_register",
]
