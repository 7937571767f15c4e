"""Hypothesis strategies for hostile DICOM files and zips of them.

Seeds are the real files in tests/data and files built by tests.integrations.dicom_factory
(fixed UIDs, so a derandomized run sees the same bytes every time). Each example is a
seed put through a few mutations that work on the encoded bytes, where a hostile sender
works: byte flips, truncation, elements inserted, duplicated, deleted or oversized,
wrong VRs and lengths, deep sequences, a transfer syntax the data is not in, garbage
preambles, splices of other files. `zipped_uploads` wraps such files in zips (every
compression method, odd member names, a zip in the zip) and may damage the zip too.
"""

from __future__ import annotations

import io
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
from hypothesis import event
from hypothesis import strategies as st
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)
from pydicom.uid import (
    UID_dictionary as _UIDS,
)

from integrations.dicom_files import MAX_HEADER_ELEMENT_BYTES
from tests.integrations.dicom_factory import make_dicom, make_hostile_dicom, nested_content

DATA = Path(__file__).resolve().parents[1] / "data" / "dicom"
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}
VRS = sorted({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO",
              b"LT", b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"} | _LONG_VRS)
BAD_VRS = [b"ZZ", b"\x00\x00", b"sq", b"  ", b"\xff\xff"]
PIXEL_TAG = b"\xe0\x7f\x10\x00"
UNDEFINED = 0xFFFFFFFF


def _uid(name: str) -> str:
    return generate_uid(entropy_srcs=[name])


def _built(name: str, pixels=None, **attributes) -> bytes:
    uids = {k: _uid(f"{name}.{k}") for k in ("StudyInstanceUID", "SeriesInstanceUID",
                                             "SOPInstanceUID")}
    return make_dicom(pixels, **{**uids, **attributes})


def _factory_seeds() -> dict[str, bytes]:
    noise = np.random.default_rng(7).integers(-1024, 3000, (32, 32)).astype(np.int16)
    seeds = {
        "factory/ct_4x4": _built("ct_4x4"),
        "factory/ct_noise_32": _built("ct_noise_32", noise),
        "factory/implicit": _built("implicit", transfer_syntax=ImplicitVRLittleEndian),
        "factory/big_endian": _built("big_endian", transfer_syntax=ExplicitVRBigEndian),
        "factory/deflated": _built("deflated", transfer_syntax=DeflatedExplicitVRLittleEndian),
        "factory/no_meta": _built("no_meta", meta=False),
        "factory/report_10_deep": _built("report", ContentSequence=nested_content(10)),
        "factory/multiframe": _built("multiframe", np.zeros((8, 8), np.uint16),
                                     NumberOfFrames=1),
        "factory/bad_uid": make_hostile_dicom(StudyInstanceUID="1.2.03.4",
                                              SeriesInstanceUID=_uid("bad.series"),
                                              SOPInstanceUID=_uid("bad.sop")),
    }
    rle = _built("rle", noise)
    from pydicom import dcmread

    ds = dcmread(io.BytesIO(rle))
    ds.compress(RLELossless, encoding_plugin="pydicom")
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    seeds["factory/rle"] = out.getvalue()
    return seeds


def _file_seeds() -> dict[str, bytes]:
    seeds = {}
    for path in sorted(DATA.rglob("*.dcm")):
        if path.parent.name == "ge_hispeed_head_ct" and path.name != "01.dcm":
            continue  # one slice of the series is enough
        seeds[str(path.relative_to(DATA))] = path.read_bytes()
    return seeds


SEEDS: dict[str, bytes] = {**_file_seeds(), **_factory_seeds()}


# --- Where the elements are -------------------------------------------------------------


def element_spans(data: bytes) -> list[tuple[int, int, bool]]:
    """(start, end, explicit VR) of the top-level elements that can be walked without a
    parser, in little-endian files: the file meta group, then the data set up to the
    first undefined length (a sequence or encapsulated pixel data) or damage."""
    pos = 132 if data[128:132] == b"DICM" else 0
    spans: list[tuple[int, int, bool]] = []
    explicit = None
    while pos + 8 <= len(data):
        group = int.from_bytes(data[pos:pos + 2], "little")
        if group != 2 and explicit is None:
            explicit = data[pos + 4:pos + 6].isalpha() and data[pos + 4:pos + 6].isupper()
        is_explicit = True if group == 2 else explicit
        if is_explicit:
            vr = data[pos + 4:pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > len(data):
                    break
                length, header = int.from_bytes(data[pos + 8:pos + 12], "little"), 12
            else:
                length, header = int.from_bytes(data[pos + 6:pos + 8], "little"), 8
        else:
            length, header = int.from_bytes(data[pos + 4:pos + 8], "little"), 8
        end = pos + header + length
        if length == UNDEFINED or end > len(data):
            break
        spans.append((pos, end, is_explicit))
        pos = end
    return spans


def encode_element(group: int, element: int, vr: bytes, value: bytes, *,
                   length: int | None = None, explicit: bool = True) -> bytes:
    """One little-endian element; ``length`` (default: the value's) may lie."""
    length = len(value) if length is None else length
    tag = struct.pack("<HH", group, element)
    if not explicit:
        return tag + struct.pack("<I", length & UNDEFINED) + value
    if vr in _LONG_VRS or len(vr) != 2 or length > 0xFFFF:
        return tag + vr[:2].ljust(2, b" ") + b"\0\0" + struct.pack("<I", length & UNDEFINED) \
            + value
    return tag + vr + struct.pack("<H", length) + value


def _boundaries(data: bytes) -> list[int]:
    spans = element_spans(data)
    return sorted({s for s, _, _ in spans} | {e for _, e, _ in spans}) or [len(data)]


def _header_end(data: bytes) -> int:
    at = data.rfind(PIXEL_TAG)
    return at if at > 0 else len(data)


# --- Mutations: each takes `draw` and the bytes, and returns new bytes --------------------


def _position(draw, data: bytes) -> int:
    """Mostly in the header, where a flip changes what the file says rather than a pixel."""
    limit = _header_end(data) if draw(st.booleans()) else len(data)
    return draw(st.integers(0, max(limit - 1, 0)))


def flip_bytes(draw, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        if out:
            out[_position(draw, out)] = draw(st.integers(0, 255))
    return bytes(out)


def truncate(draw, data: bytes) -> bytes:
    return data[:_position(draw, data)]


def _value(draw) -> bytes:
    return draw(st.one_of(
        st.binary(max_size=64),
        st.sampled_from([b"1.2.840.10008.5.1.4.1.1.2\0", b"1..2", b"01.2", b"1" * 80,
                         b"NaN ", b"1e400 ", b"-0", b"99999999", b"-1", b"0 ", b"\\\\\\\\",
                         b"20261301", b"DICM", b"PK\x03\x04", b"\xff\xfe\x00\xe0"]),
        st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass"))))


def _tag(draw) -> tuple[int, int]:
    group = draw(st.sampled_from([0x0002, 0x0008, 0x0009, 0x0010, 0x0018, 0x0020, 0x0028,
                                  0x0040, 0x5000, 0x6000, 0x7FE0, 0xFFFE, 0xFFFF]))
    known = {0x0008: [0x0016, 0x0018, 0x0060], 0x0020: [0x000D, 0x000E, 0x0013],
             0x0028: [0x0002, 0x0008, 0x0010, 0x0011, 0x0100, 0x1052, 0x1053],
             0x0002: [0x0000, 0x0010], 0x7FE0: [0x0008, 0x0010], 0xFFFE: [0xE000, 0xE0DD]}
    element = draw(st.one_of(st.sampled_from(known.get(group, [0x0010])),
                             st.integers(0, 0xFFFF)))
    return group, element


def _length(draw, honest: int) -> int | None:
    return draw(st.sampled_from([None, None, 0, honest + 1, honest + 1_000_000, UNDEFINED,
                                 UNDEFINED - 1, 2**31]))


def insert_element(draw, data: bytes) -> bytes:
    group, element = _tag(draw)
    value = _value(draw)
    vr = draw(st.sampled_from(VRS + BAD_VRS))
    encoded = encode_element(group, element, vr, value, length=_length(draw, len(value)),
                             explicit=draw(st.booleans()))
    at = draw(st.sampled_from(_boundaries(data)))
    return data[:at] + encoded + data[at:]


def duplicate_element(draw, data: bytes) -> bytes:
    spans = element_spans(data)
    if not spans:
        return data
    start, end, _ = draw(st.sampled_from(spans))
    at = draw(st.sampled_from(_boundaries(data)))
    return data[:at] + data[start:end] + data[at:]


def delete_element(draw, data: bytes) -> bytes:
    spans = element_spans(data)
    if not spans:
        return data
    start, end, _ = draw(st.sampled_from(spans))
    return data[:start] + data[end:]


def change_vr(draw, data: bytes) -> bytes:
    spans = [s for s in element_spans(data) if s[2]]
    if not spans:
        return data
    start, _, _ = draw(st.sampled_from(spans))
    vr = draw(st.sampled_from(VRS + BAD_VRS))
    return data[:start + 4] + vr + data[start + 6:]


def change_length(draw, data: bytes) -> bytes:
    spans = element_spans(data)
    if not spans:
        return data
    start, end, explicit = draw(st.sampled_from(spans))
    if explicit and data[start + 4:start + 6] not in _LONG_VRS:
        new = draw(st.sampled_from([0, 1, 0xFFFF, end - start - 7, end - start + 1]))
        return data[:start + 6] + struct.pack("<H", new & 0xFFFF) + data[start + 8:]
    at = start + (8 if explicit else 4)
    new = draw(st.sampled_from([0, 1, UNDEFINED, UNDEFINED - 1, 2**31, end - at + 1]))
    return data[:at] + struct.pack("<I", new) + data[at + 4:]


def nest_sequences(draw, data: bytes) -> bytes:
    """Sequences nested `depth` deep, of undefined length (parsed as the file is read)."""
    depth = draw(st.integers(1, 60))
    opening = (struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, UNDEFINED)
               + struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED))
    inner = encode_element(0x0040, 0xA160, b"UT", b"finding ") if draw(st.booleans()) else b""
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    if draw(st.booleans()):
        closing = closing[:draw(st.integers(0, len(closing) - 1))]  # unclosed
    at = _header_end(data)
    return data[:at] + opening * depth + inner + closing * depth + data[at:]


def many_elements(draw, data: bytes) -> bytes:
    count = draw(st.sampled_from([100, 5_000, 30_000]))
    block = b"".join(encode_element(0x0009, 0x1000 + n % 0xF000, b"LO", b"ab")
                     for n in range(count))
    at = _header_end(data)
    return data[:at] + block + data[at:]


def oversized_element(draw, data: bytes) -> bytes:
    size = draw(st.sampled_from([MAX_HEADER_ELEMENT_BYTES, MAX_HEADER_ELEMENT_BYTES + 2]))
    group, element = draw(st.sampled_from([(0x0009, 0x1010), (0x0008, 0x103E),
                                           (0x0040, 0xA160)]))
    vr = draw(st.sampled_from([b"OB", b"UT", b"UN", b"SQ"]))
    at = _header_end(data)
    return data[:at] + encode_element(group, element, vr, bytes(size)) + data[at:]


def zero_run(draw, data: bytes) -> bytes:
    """Megabytes of zeros, which parse as empty elements (or items, in a sequence)."""
    size = draw(st.sampled_from([1, 4, 16])) * 1024 * 1024
    if draw(st.booleans()):
        return data + bytes(size)
    return before_pixels(data, encode_element(0x0040, 0xA730, b"SQ", bytes(size)))


def before_pixels(data: bytes, element: bytes) -> bytes:
    at = _header_end(data)
    return data[:at] + element + data[at:]


def deflate_bomb(draw, data: bytes) -> bytes:
    """A deflated data set holding an element of zeros: kilobytes that inflate to many MB."""
    megabytes = draw(st.sampled_from([2, 30, 300]))
    return deflated_with_zeros(megabytes * 1024 * 1024)


def deflated_with_zeros(size: int) -> bytes:
    """The deflated factory file with a private OB element of ``size`` zero bytes in its
    data set, compressed a megabyte at a time (the test never holds it inflated)."""
    seed = SEEDS["factory/deflated"]
    meta_end = 132 + 12 + int.from_bytes(seed[140:144], "little")
    body = zlib.decompress(seed[meta_end:], -zlib.MAX_WBITS)
    at = body.rindex(PIXEL_TAG)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [packer.compress(body[:at] + encode_element(0x0009, 0x1010, b"OB", b"",
                                                        length=size))]
    zeros = bytes(1024 * 1024)
    for _ in range(size // len(zeros)):
        parts.append(packer.compress(zeros))
    parts.append(packer.compress(body[at:]) + packer.flush())
    return seed[:meta_end] + b"".join(parts)


TRANSFER_SYNTAXES = sorted(uid for uid, entry in _UIDS.items() if entry[1] == "Transfer Syntax")


def set_transfer_syntax(draw, data: bytes) -> bytes:
    """The file meta names another transfer syntax than the data is in."""
    at = data.find(b"\x02\x00\x10\x00UI")
    if at < 0:
        return data
    old = int.from_bytes(data[at + 6:at + 8], "little")
    uid = draw(st.one_of(st.sampled_from(TRANSFER_SYNTAXES),
                         st.sampled_from(["1.2.3.4", "", "1.2.840.10008.1.2.1.99.5", "abc",
                                          "1.2.840.10008.1.2.4.50\0\0"]))).encode()
    uid += b"\0" * (len(uid) % 2)
    out = data[:at + 6] + struct.pack("<H", len(uid)) + uid + data[at + 8 + old:]
    group = out.find(b"\x02\x00\x00\x00UL\x04\x00")
    if group >= 0:  # keep the meta group length honest, so only the syntax lies
        total = int.from_bytes(out[group + 8:group + 12], "little") + len(uid) - old
        out = out[:group + 8] + struct.pack("<I", total & UNDEFINED) + out[group + 12:]
    return out


def garbage_preamble(draw, data: bytes) -> bytes:
    body = data[128:] if data[128:132] == b"DICM" else data
    kind = draw(st.sampled_from(["random", "zip", "pe", "none", "shifted", "twice"]))
    if kind == "random":
        return draw(st.binary(min_size=128, max_size=128)) + body
    if kind == "zip":
        return b"PK\x03\x04".ljust(128, b"\0") + body
    if kind == "pe":
        return b"MZ\x90\x00".ljust(128, b"\xcc") + body
    if kind == "none":
        return body[4:] if body.startswith(b"DICM") else body
    if kind == "shifted":
        return draw(st.binary(min_size=1, max_size=16)) + data
    return bytes(128) + b"DICM" + data


def splice(draw, data: bytes) -> bytes:
    other = SEEDS[draw(st.sampled_from(sorted(SEEDS)))]
    start = draw(st.integers(0, max(len(other) - 1, 0)))
    chunk = other[start:start + draw(st.integers(1, 4096))]
    at = _position(draw, data)
    return data[:at] + chunk + data[at:]


MUTATIONS = {f.__name__: f for f in (
    flip_bytes, truncate, insert_element, duplicate_element, delete_element, change_vr,
    change_length, nest_sequences, many_elements, oversized_element, zero_run, deflate_bomb,
    set_transfer_syntax, garbage_preamble, splice)}


# Mutations that make megabytes: the zip test leaves them to the file test.
HEAVY = {"many_elements", "oversized_element", "zero_run", "deflate_bomb"}


@st.composite
def dicom_files(draw, max_mutations: int = 4, small: bool = False) -> bytes:
    """A seed file put through up to ``max_mutations`` mutations (none: the seed);
    ``small``: a seed under 100 kB and no mutation that makes megabytes."""
    name = draw(st.sampled_from(sorted(n for n, d in SEEDS.items()
                                       if not small or len(d) <= 100_000)))
    data = SEEDS[name]
    event(f"seed {name}")
    for _ in range(draw(st.integers(0, max_mutations))):
        mutation = draw(st.sampled_from(sorted(set(MUTATIONS) - (HEAVY if small else set()))))
        event(f"mutation {mutation}")
        data = MUTATIONS[mutation](draw, data)
    return data


MEMBER_NAMES = ["scan.dcm", "IMG0001", "../../etc/passwd.dcm", "DICOMDIR", "a/b/c.dcm",
                "__MACOSX/._scan.dcm", "café/ß.dcm", "dir/", "x" * 300]
COMPRESSIONS = [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]


def _zip(members: list[tuple[str, bytes]], compression: int) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicate member name is part of the attack
        with zipfile.ZipFile(buffer, "w", compression) as archive:
            for name, data in members:  # a fixed date: the same draws, the same bytes
                archive.writestr(zipfile.ZipInfo(name, (2026, 12, 2, 3, 0, 0)), data,
                                 compress_type=compression)
    return buffer.getvalue()


def lzma_with_bad_properties() -> bytes:
    """A zip whose one LZMA member has its properties header overwritten."""
    data = bytearray(_zip([("scan.dcm", SEEDS["factory/ct_4x4"])], zipfile.ZIP_LZMA))
    name_length, extra_length = struct.unpack_from("<HH", data, 26)
    start = 30 + name_length + extra_length
    data[start + 4:start + 9] = b"\xff" * 5
    return bytes(data)


def zip_with_local_name(name: str, first_byte: int) -> bytes:
    """A zip of one member called ``name`` whose local header (not its directory entry)
    has the name's first byte replaced by ``first_byte``."""
    data = bytearray(_zip([(name, SEEDS["factory/ct_4x4"])], zipfile.ZIP_DEFLATED))
    data[30] = first_byte
    return bytes(data)


def damage_zip(draw, data: bytes) -> bytes:
    """Flip, cut or rewrite a size or offset in the local or central headers."""
    kind = draw(st.sampled_from(["flip", "truncate", "central size", "local size",
                                 "method", "offset"]))
    if kind == "flip":
        return flip_bytes(draw, data)
    if kind == "truncate":
        return data[:draw(st.integers(0, max(len(data) - 1, 0)))]
    signature, fields = {"central size": (b"PK\x01\x02", [20, 24]),
                         "local size": (b"PK\x03\x04", [18, 22]),
                         "method": (b"PK\x01\x02", [10]),
                         "offset": (b"PK\x01\x02", [42])}[kind]
    at = data.find(signature)
    if at < 0:
        return data
    where = at + draw(st.sampled_from(fields))
    if kind == "method":
        value = struct.pack("<H", draw(st.sampled_from([1, 6, 9, 12, 14, 93, 99, 0xFFFF])))
    else:
        value = struct.pack("<I", draw(st.sampled_from([0, 1, 2**31, UNDEFINED, 1 << 20])))
    return data[:where] + value + data[where + len(value):]


@st.composite
def zipped_uploads(draw) -> bytes:
    """A zip of one to three (mutated) DICOM files, maybe holding a zip, maybe damaged.
    Its members are small seeds: compressing a big one (LZMA) would cost more than
    checking it, and big files have their own test."""
    files = dicom_files(max_mutations=2, small=True)
    members = [(draw(st.sampled_from(MEMBER_NAMES)), draw(files))
               for _ in range(draw(st.integers(1, 3)))]
    if draw(st.integers(0, 9)) == 0:
        members.append(("inner.zip", _zip(members[:1], zipfile.ZIP_DEFLATED)))
        event("zip in a zip")
    compression = draw(st.sampled_from(COMPRESSIONS))
    event(f"compression {compression}")
    data = _zip(members, compression)
    for _ in range(draw(st.integers(0, 2))):
        data = damage_zip(draw, data)
        event("zip damaged")
    return data
