#!/usr/bin/env python3
"""Check an inclusion proof from `flask audit proof <referral id>`, without the app.

    python tools/verify_proof.py proof.json [--public-key HEX]

Checks that the leaf (referral id, head seq, head hash) is in the Merkle tree
(RFC 6962 hashing, RFC 9162 section 2.1.3.2 verification) whose root the tree head
names, and that the tree head carries a valid Ed25519 signature; with --public-key,
that it is the expected key (the one the audit lead holds, not the one in the file).
Prints "ok" and exits 0, or prints the reason and exits 1. Needs only the standard
library and `cryptography`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class ProofError(Exception):
    pass


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes:
    """The root the audit path leads to (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of {size}")
    fn, sn, r = index, size - 1, hashlib.sha256(b"\x00" + leaf).digest()
    for p in path:
        if sn == 0:
            raise ProofError("the path is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the path is shorter than the tree is deep")
    return r


def check(proof: dict, public_key: str | None = None) -> None:
    """Raise ProofError with the reason if the proof does not hold."""
    try:
        tree_head = proof["tree_head"]
        leaf = proof["leaf"].encode()
        path = [bytes.fromhex(node) for node in proof["path"]]
        root = root_from_path(leaf, int(proof["leaf_index"]), int(tree_head["tree_size"]),
                              path)
        signature, key = bytes.fromhex(proof["signature"]), proof["public_key"]
    except (KeyError, TypeError, ValueError) as error:
        raise ProofError(f"the proof is malformed: {error!r}") from None
    if root.hex() != tree_head["root"]:
        raise ProofError("the leaf and path do not lead to the signed root")
    if public_key and public_key.lower() != key.lower():
        raise ProofError("the tree head was signed by another key than the one expected")
    signed = json.dumps(tree_head, sort_keys=True, separators=(",", ":")).encode()
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(key)).verify(signature, signed)
    except (ValueError, InvalidSignature):
        raise ProofError("the tree head's signature does not verify") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("proof", help="the proof JSON file ('-' for standard input)")
    parser.add_argument("--public-key", help="the anchor key's public key, hex")
    args = parser.parse_args(argv)
    try:
        text = sys.stdin.read() if args.proof == "-" else open(args.proof).read()
        proof = json.loads(text)
        check(proof, args.public_key)
    except (OSError, ValueError) as error:
        print(f"cannot read the proof: {error}")
        return 2
    except ProofError as error:
        print(f"FAILED: {error}")
        return 1
    print(f"ok: {proof['leaf']} is in the tree anchored at {proof['tree_head']['at']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
