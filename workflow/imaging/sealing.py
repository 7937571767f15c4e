"""PACS endpoint secrets, encrypted at rest (Fernet: AES-128-CBC with an HMAC).

The key is GOLDENHOUR_PACS_KEY (a Fernet key) or, when that is not set, one derived
from SECRET_KEY with HKDF. A stored value is "fernet:<token>"; one without the prefix
is a plain secret from before encryption, sealed the first time it is read. The plain
text exists only in the `PacsTarget` a PACS call is made with.
"""

from __future__ import annotations

import base64
import logging

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app

log = logging.getLogger(__name__)
PREFIX = "fernet:"


def _fernet() -> Fernet:
    key = current_app.config.get("PACS_SECRET_KEY")
    if not key:
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                       info=b"goldenhour PACS endpoint secrets").derive(
            current_app.config["SECRET_KEY"].encode())
        key = base64.urlsafe_b64encode(derived)
    return Fernet(key)


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)


def seal(secret: str) -> str:
    """``secret`` encrypted for the database ("" stays "")."""
    if not secret:
        return ""
    return PREFIX + _fernet().encrypt(secret.encode()).decode()


def unseal(stored: str, *, hospital: str) -> str:
    """The plain secret of a stored value (a plain legacy value as it is).

    A value this server's key cannot open (the key changed) is logged and read as ""
    (the PACS will then refuse the credentials: the admin enters the secret again)."""
    if not is_sealed(stored):
        return stored
    try:
        return _fernet().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        log.warning("the PACS secret of %s cannot be decrypted with this server's key "
                    "(GOLDENHOUR_PACS_KEY or SECRET_KEY changed); enter it again on the "
                    "admin PACS page", hospital)
        return ""
