"""Anchoring the evidence outside the database.

Every referral's chain head (its last event) and the access log's head are the
leaves of a Merkle tree in the style of RFC 6962 (Certificate Transparency): leaf
hash SHA-256(0x00 || leaf), node hash SHA-256(0x01 || left || right). The tree's
root, with its time, size and counts (the "tree head"), is signed with an Ed25519
key that is not in the database and appended to the anchors file
(integrations/anchor_log.py). `verify_published()` checks the database against
every tree head in that file; `proof()` exports one referral's inclusion proof,
which tools/verify_proof.py checks without the app.

Each anchor line also lists the heads it covered ([referral id, seq, first 16 hex
of the head hash]), so a referral deleted or resealed since is named, not only
noticed as a different root.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import current_app
from sqlalchemy import func, select, tuple_

from extensions import db
from integrations import anchor_log
from models import AccessLog, Referral, ReferralEvent
from workflow import access_log
from workflow.audit import records
from workflow.times import now as utcnow

VERSION = 1
PREFIX = 16  # hex characters of each head hash kept in the anchor line
CHUNK = 500


class AnchorError(Exception):
    """Anchoring or a proof is not possible; the message says why."""


# RFC 6962 section 2.1.

def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def merkle_root(hashes: list[bytes]) -> bytes:
    """MTH over leaf hashes (the empty tree's root is SHA-256 of nothing)."""
    if not hashes:
        return hashlib.sha256(b"").digest()
    if len(hashes) == 1:
        return hashes[0]
    k = _split(len(hashes))
    return node_hash(merkle_root(hashes[:k]), merkle_root(hashes[k:]))


def inclusion_path(index: int, hashes: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the audit path of leaf ``index``, leaf side first."""
    if len(hashes) <= 1:
        return []
    k = _split(len(hashes))
    if index < k:
        return inclusion_path(index, hashes[:k]) + [merkle_root(hashes[k:])]
    return inclusion_path(index - k, hashes[k:]) + [merkle_root(hashes[:k])]


def root_from_path(leaf: bytes, index: int, size: int, path: list[bytes]) -> bytes | None:
    """The root that ``leaf`` at ``index`` of a tree of ``size`` leads to along the audit
    ``path`` (RFC 9162 2.1.3.2), or None if the path does not fit such a tree."""
    if not 0 <= index < size:
        return None
    fn, sn, node = index, size - 1, leaf_hash(leaf)
    for sibling in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    return node if sn == 0 else None


def referral_leaf(referral_id: int, seq: int, head_hash: str) -> str:
    return f"{referral_id}:{seq}:{head_hash}"


def access_log_leaf(seq: int, head_hash: str) -> str:
    return f"access_log:{seq}:{head_hash}"


def canonical_tree_head(tree_head: dict) -> bytes:
    """The bytes that are signed (tools/verify_proof.py builds the same)."""
    return json.dumps(tree_head, sort_keys=True, separators=(",", ":")).encode()


def current_heads() -> list[tuple[int, int, str]]:
    """(referral id, last seq, head hash) for every referral with events, by id."""
    last = (select(ReferralEvent.referral_id, func.max(ReferralEvent.seq).label("seq"))
            .group_by(ReferralEvent.referral_id).subquery())
    rows = db.session.execute(
        select(ReferralEvent.referral_id, ReferralEvent.seq, ReferralEvent.hash)
        .join(last, (last.c.referral_id == ReferralEvent.referral_id)
              & (last.c.seq == ReferralEvent.seq))
        .order_by(ReferralEvent.referral_id))
    return [(r.referral_id, r.seq, r.hash) for r in rows]


def public_hex(public: Ed25519PublicKey) -> str:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def anchor(key_file: str, log_file: str, at: datetime | None = None) -> dict:
    """Sign the current heads' tree head and append it to the anchors file, then note
    its root on the decision records it covers for the first time; return the line
    written. Raises AnchorLogError (integrations.anchor_log) if the key or the file
    cannot be used. Call it outside any transaction of the app's: it reads, writes the
    file, then commits the notes (if that fails, the next anchor notes them)."""
    key = anchor_log.load_signing_key(key_file)
    heads = current_heads()
    log_seq, log_hash = access_log.head()
    db.session.rollback()  # end the read: the file write below is slow I/O
    signed_at = at or utcnow()
    leaves = [referral_leaf(*head) for head in heads] + [access_log_leaf(log_seq, log_hash)]
    root = merkle_root([leaf_hash(leaf.encode()) for leaf in leaves])
    tree_head = {
        "version": VERSION,
        "at": signed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "tree_size": len(leaves),
        "referrals": len(heads),
        "access_log_seq": log_seq,
        "root": root.hex(),
    }
    entry = {
        "tree_head": tree_head,
        "signature": key.sign(canonical_tree_head(tree_head)).hex(),
        "public_key": public_hex(key.public_key()),
        "heads": [[rid, seq, digest[:PREFIX]] for rid, seq, digest in heads],
        "access_log": [log_seq, log_hash[:PREFIX]],
    }
    anchor_log.append(log_file, entry)
    records.note_anchor(heads, tree_head["root"], signed_at)
    return entry


def signature_problem(entry: dict, expected_key: str | None) -> str | None:
    """What is wrong with the line's signature (or its key, when ``expected_key``, the
    configured public key in hex, is given), or None."""
    tree_head = entry.get("tree_head") or {}
    where = f"anchor at {tree_head.get('at', '?')}"
    if expected_key and entry.get("public_key") != expected_key:
        return f"{where}: signed by a key that is not the configured anchor key"
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(entry["public_key"])).verify(
            bytes.fromhex(entry["signature"]), canonical_tree_head(tree_head))
    except (KeyError, ValueError, InvalidSignature):
        return f"{where}: its signature does not verify (the line was altered)"
    return None


def event_hashes(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], str]:
    found = {}
    for start in range(0, len(pairs), CHUNK):
        chunk = pairs[start:start + CHUNK]
        for row in db.session.execute(
                select(ReferralEvent.referral_id, ReferralEvent.seq, ReferralEvent.hash)
                .where(tuple_(ReferralEvent.referral_id, ReferralEvent.seq).in_(chunk))):
            found[(row.referral_id, row.seq)] = row.hash
    return found


def _existing_referrals(ids: list[int]) -> set[int]:
    existing: set[int] = set()
    for start in range(0, len(ids), CHUNK):
        existing.update(db.session.scalars(
            select(Referral.id).where(Referral.id.in_(ids[start:start + CHUNK]))))
    return existing


def check_entry(entry: dict) -> tuple[list[str], list[bytes] | None, list[str]]:
    """Compare one anchor line with the database: (problems, leaf hashes, leaves).

    The leaf hashes are None when a head it covered is gone or differs (named in
    problems); otherwise they rebuild the tree the line's root was signed over.
    """
    tree_head = entry["tree_head"]
    when = tree_head["at"]
    heads = [(int(rid), int(seq), prefix) for rid, seq, prefix in entry.get("heads", [])]
    hashes = event_hashes([(rid, seq) for rid, seq, _ in heads])
    existing = _existing_referrals([rid for rid, _, _ in heads])
    problems, leaves = [], []
    for rid, seq, prefix in heads:
        digest = hashes.get((rid, seq))
        if rid not in existing:
            problems.append(f"referral {rid}: anchored at {when} (head seq {seq}) but is "
                            "now missing")
        elif digest is None:
            problems.append(f"referral {rid}: event seq {seq}, its head anchored at {when}, "
                            "is missing")
        elif digest[:PREFIX] != prefix:
            problems.append(f"referral {rid}: event seq {seq} differs from the head anchored "
                            f"at {when}: its chain was rewritten")
        else:
            leaves.append(referral_leaf(rid, seq, digest))
    log_seq, log_prefix = entry["access_log"]
    log_hash = access_log.GENESIS if log_seq == 0 else db.session.scalar(
        select(AccessLog.hash).where(AccessLog.seq == log_seq))
    if log_hash is None:
        problems.append(f"access log: row seq {log_seq}, its head anchored at {when}, is "
                        "missing (deleted)")
    elif log_hash[:PREFIX] != log_prefix:
        problems.append(f"access log: row seq {log_seq} differs from the head anchored at "
                        f"{when}: its chain was rewritten")
    else:
        leaves.append(access_log_leaf(log_seq, log_hash))
    if problems:
        return problems, None, leaves
    leaf_hashes = [leaf_hash(leaf.encode()) for leaf in leaves]
    if merkle_root(leaf_hashes).hex() != tree_head["root"]:
        return ([f"anchor at {when}: the database's heads no longer give its signed root "
                 "(the line's head list or the chains were altered)"], None, leaves)
    return [], leaf_hashes, leaves


def configured() -> tuple[str, str]:
    config = current_app.config
    return config.get("ANCHOR_KEY_FILE", ""), config.get("ANCHOR_LOG", "")


def configured_public_key() -> str | None:
    """The configured anchor key's public half in hex (None without a key file).
    Raises AnchorLogError if the key file cannot be used."""
    key_file, _ = configured()
    return public_hex(anchor_log.load_signing_key(key_file).public_key()) if key_file \
        else None


def verify_published() -> tuple[int, list[str]]:
    """Check the database against every anchor in the configured anchors file, and
    that every anchor root noted on a decision record is one of theirs: (anchors
    checked, [problem, ...]), each problem named once (the first anchor that shows it).
    Nothing to check without GOLDENHOUR_ANCHOR_LOG. A bad key or an unreadable file is
    itself a problem, not an exception."""
    key_file, log_file = configured()
    if not log_file:
        return 0, []
    try:
        entries = anchor_log.read_all(log_file)
        expected_key = configured_public_key()
    except anchor_log.AnchorLogError as error:
        return 0, [f"anchors: {error}"]
    problems: list[str] = []
    seen: set[str] = set()
    rebuilt: dict[str, tuple] = {}
    for entry in entries:
        found = signature_problem(entry, expected_key)
        if not found:
            rebuilt[entry["tree_head"]["root"]] = checked = check_entry(entry)
        found = [found] if found else checked[0]
        for problem in found:
            subject = problem.split(":", 1)[0]
            if subject not in seen or subject.startswith("anchor"):
                seen.add(subject)
                problems.append(problem)
    problems += check_noted_roots(entries, rebuilt=rebuilt)
    return len(entries), problems


def _covers(entry: dict, referral_id: int, event_seq: int,
            rebuilt: tuple[list[str], list[bytes]] | None) -> bool:
    """Whether the tree of ``entry`` holds a head of ``referral_id`` at or after
    ``event_seq``. With ``rebuilt`` (its leaves and leaf hashes from the database) the
    leaf's audit path is recomputed and must lead to the signed root; without, the
    line's head list is taken as it is (the nightly check compared it with the
    database)."""
    for index, (rid, seq, _) in enumerate(entry.get("heads", [])):
        if int(rid) == referral_id:
            if int(seq) < event_seq:
                return False
            if rebuilt is None:
                return True
            leaves, leaf_hashes = rebuilt
            path = inclusion_path(index, leaf_hashes)
            return root_from_path(leaves[index].encode(), index, len(leaf_hashes), path) \
                == bytes.fromhex(entry["tree_head"]["root"])
    return False


def check_noted_roots(entries: list[dict], since: str = "", paths: bool = True,
                      rebuilt: dict | None = None) -> list[str]:
    """Every decision record's noted anchor root (noted at or after ``since``, an ISO
    time, when given) must be a root in ``entries`` whose tree covers the record: its
    referral's head at that anchor is at or after the event the record was made at,
    and (with ``paths``) the head's audit path leads to the signed root, the tree
    rebuilt from the database (``rebuilt``: root -> `check_entry`'s result, reused).
    One problem per record that fails, naming it. Raises only what the database
    raises."""
    noted = records.noted_anchors(since)
    if not noted:
        return []
    by_root = {entry["tree_head"]["root"]: entry for entry in entries}
    problems = []
    rebuilt = {} if rebuilt is None else rebuilt
    for record in noted:
        where = (f"decision record {record.id} (v{record.version}) of referral "
                 f"{record.referral_id}")
        entry = by_root.get(record.anchored_root)
        if entry is None:
            problems.append(f"{where}: noted as anchored in root {record.anchored_root}, "
                            "which no anchor in the anchors file has")
            continue
        tree = None
        if paths:
            if record.anchored_root not in rebuilt:
                rebuilt[record.anchored_root] = check_entry(entry)
            _, leaf_hashes, leaves = rebuilt[record.anchored_root]
            if leaf_hashes is None:
                continue  # the anchor itself disagrees with the database: named apart
            tree = (leaves, leaf_hashes)
        if not _covers(entry, record.referral_id, record.event_seq, tree):
            problems.append(f"{where}: noted as anchored in root {record.anchored_root} "
                            f"({entry['tree_head']['at']}), whose tree does not cover its "
                            f"event seq {record.event_seq}")
    return problems


def proof(referral_id: int) -> dict:
    """The inclusion proof of ``referral_id``'s head in the latest anchor: the leaf,
    its index, the audit path, the signed tree head, its signature and public key.

    Raises AnchorError if there is no anchor, the referral is not in it, or the
    database no longer matches it; AnchorLogError if the file cannot be read.
    """
    _, log_file = configured()
    if not log_file:
        raise AnchorError("no anchors file is configured (GOLDENHOUR_ANCHOR_LOG)")
    entries = anchor_log.read_all(log_file)
    if not entries:
        raise AnchorError(f"no anchor has been written to {log_file} yet")
    entry = entries[-1]
    ids = [int(rid) for rid, _, _ in entry["heads"]]
    if referral_id not in ids:
        raise AnchorError(f"referral {referral_id} is not in the latest anchor "
                          f"({entry['tree_head']['at']}); anchor again after it was raised")
    problems, leaf_hashes, leaves = check_entry(entry)
    if leaf_hashes is None:
        raise AnchorError(f"the database disagrees with the latest anchor: {problems[0]}")
    index = ids.index(referral_id)
    return {
        "leaf": leaves[index],
        "leaf_index": index,
        "tree_head": entry["tree_head"],
        "path": [node.hex() for node in inclusion_path(index, leaf_hashes)],
        "signature": entry["signature"],
        "public_key": entry["public_key"],
    }
