"""The anchors' outside home: the signing key file and the append-only anchors file.

Neither is in the database. The key file (GOLDENHOUR_ANCHOR_KEY_FILE) holds an
Ed25519 private key as PEM (PKCS#8) or its 32 raw bytes; the anchors file
(GOLDENHOUR_ANCHOR_LOG) gets one JSON line per anchor and is only ever opened to
append or to read.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


class AnchorLogError(Exception):
    """The key or the anchors file cannot be used; the message says what to fix."""


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 key in ``path``. Raises AnchorLogError if it is missing or not one."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        raise AnchorLogError(f"cannot read the anchor key file {path}: {error.strerror}") \
            from None
    if raw.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(raw, password=None)
        except (ValueError, TypeError) as error:
            raise AnchorLogError(f"the anchor key file {path} is not a readable PEM key "
                                 f"without a password: {error}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise AnchorLogError(f"the anchor key in {path} is not an Ed25519 key")
        return key
    if len(raw) == 32:
        return Ed25519PrivateKey.from_private_bytes(raw)
    raise AnchorLogError(f"the anchor key file {path} holds neither a PEM key nor 32 raw "
                         "bytes of an Ed25519 key")


def append(path: str | Path, entry: dict) -> None:
    """Append ``entry`` as one JSON line and flush it to disk. Raises AnchorLogError."""
    line = json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n"
    try:
        with open(path, "a", encoding="utf-8") as file:
            file.write(line)
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        raise AnchorLogError(f"cannot append to the anchors file {path}: {error.strerror}") \
            from None


def read_all(path: str | Path) -> list[dict]:
    """Every anchor in the file, oldest first ([] if there is no file yet).

    Raises AnchorLogError naming the line that is not JSON.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as error:
        raise AnchorLogError(f"cannot read the anchors file {path}: {error.strerror}") \
            from None
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except ValueError:
            raise AnchorLogError(f"the anchors file {path}: line {number} is not JSON") \
                from None
    return entries


def read_first(path: str | Path) -> dict | None:
    """The oldest anchor in the file (None if there is none), reading its first line only.

    Raises AnchorLogError if the file cannot be read or its first line is not JSON.
    """
    try:
        with open(path, "rb") as file:
            line = file.readline()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise AnchorLogError(f"cannot read the anchors file {path}: {error.strerror}") \
            from None
    if not line.strip():
        return None
    try:
        return json.loads(line)
    except ValueError:
        raise AnchorLogError(f"the anchors file {path}: line 1 is not JSON") from None


def read_last(path: str | Path) -> dict | None:
    """The latest anchor in the file (None if there is none), read from the end: each
    line lists every referral's head, so the whole file is large.

    Raises AnchorLogError if the file cannot be read or its last line is not JSON.
    """
    try:
        with open(path, "rb") as file:
            position = file.seek(0, os.SEEK_END)
            data = b""
            while position > 0:
                step = min(position, max(1 << 16, len(data)))  # doubling: linear in all
                position -= step
                file.seek(position)
                data = file.read(step) + data
                body = data.rstrip(b"\r\n \t")
                cut = body.rfind(b"\n")
                if cut >= 0 or position == 0:
                    data = body[cut + 1:]
                    break
    except FileNotFoundError:
        return None
    except OSError as error:
        raise AnchorLogError(f"cannot read the anchors file {path}: {error.strerror}") \
            from None
    if not data.strip():
        return None
    try:
        return json.loads(data)
    except ValueError:
        raise AnchorLogError(f"the anchors file {path}: its last line is not JSON") from None
