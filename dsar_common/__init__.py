"""What the service and the connector runtime both need: settings, topic names and sealing.

Nothing here imports the service or a connector; both import from here.
"""

from dsar_common.sealing import KeyPair, SealError, open_sealed, seal
from dsar_common.settings import KafkaSettings, Settings, SettingsError
from dsar_common.topics import Topics

__all__ = [
    "KafkaSettings",
    "KeyPair",
    "SealError",
    "Settings",
    "SettingsError",
    "Topics",
    "open_sealed",
    "seal",
]
