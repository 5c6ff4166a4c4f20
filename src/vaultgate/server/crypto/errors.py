"""The crypto package's two errors; both say nothing an attacker or a log reader can use.

DecryptionError   a sealed blob did not open (any reason: tampered, truncated, wrong key/AAD)
MasterKeyError    the master key material is missing, malformed, unsafe on disk or wrong
"""

from __future__ import annotations

from typing import Final

DECRYPTION_FAILED: Final = "could not open sealed data"


class DecryptionError(Exception):
    """Sealed data did not open. Deliberately one message for every cause.

    Telling a tampered tag from a wrong key or a truncated blob would hand an attacker an
    oracle, so the constructor takes no arguments and nothing can add detail later.
    """

    def __init__(self) -> None:
        super().__init__(DECRYPTION_FAILED)


class MasterKeyError(Exception):
    """The vault must not start: its master key is missing, malformed, exposed or wrong.

    Messages name key ids, positions and files, never key material or the raw setting.
    """
