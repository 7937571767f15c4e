"""Reading a DICOM file within bounds that pydicom does not keep by itself.

pydicom parses a whole data set (and, on first access, a whole defined-length sequence)
before anything can count what it found, and inflates a deflated data set whole. Eight
zero bytes parse as one empty element, so a few megabytes of zeros cost seconds of CPU
and, inside a sequence, hundreds of megabytes of empty items; a 150 kB deflated file
inflates to 150 MB. Here element headers are counted as pydicom reads them, and a
deflated data set is inflated a megabyte at a time within a size and a ratio limit,
before pydicom sees it. `integrations.dicom_files` turns `OverLimit` into an `ImagingError`.
"""

from __future__ import annotations

import io
import struct
import zlib

from pydicom.dataelem import RawDataElement
from pydicom.filereader import read_sequence
from pydicom.uid import DeflatedExplicitVRLittleEndian

_CHUNK = 1024 * 1024
# As for the members of an uploaded zip (workflow.imaging.uploads): a deflate bomb is one.
MAX_RATIO = 100
RATIO_FROM_BYTES = 1024 * 1024
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}
_DEFLATED = DeflatedExplicitVRLittleEndian.encode()


class OverLimit(Exception):
    """The file breaks a limit while it is read; the message says which."""


class HeaderCounter(io.BytesIO):
    """A file pydicom reads that stops it after ``limit`` reads of eight bytes.

    pydicom reads every element, item and delimiter header as eight bytes, and an
    element's value in one more read, so a data set of E elements and I sequence items
    takes at most 2E + 2I such reads: `limit` is set from the limits the parsed data
    set is then checked against, and nothing within them is stopped here.
    """

    def __init__(self, data: bytes, limit: int, message: str):
        super().__init__(data)
        self.left, self.message = limit, message

    def read(self, size: int | None = -1) -> bytes:
        if size == 8:
            self.left -= 1
            if self.left < 0:
                raise OverLimit(self.message)
        return super().read(size)


def check_sequence(raw: RawDataElement, items_left: int, reads: int, message: str) -> None:
    """Walk the items of a defined-length sequence before pydicom converts it (which it
    would do whole, making an empty item of every eight zero bytes).

    Items of defined length are counted from their headers without parsing them; from
    the first item of undefined length on, the rest is parsed through a HeaderCounter
    of ``reads``.

    Raises OverLimit: ``message`` for more than ``items_left`` items (or reads), or
    data where an item should start.
    """
    value = raw.value or b""
    layout = "<HHL" if raw.is_little_endian else ">HHL"
    pos = count = 0
    while pos + 8 <= len(value):
        group, element, length = struct.unpack_from(layout, value, pos)
        if (group, element) == (0xFFFE, 0xE0DD):
            return
        if (group, element) != (0xFFFE, 0xE000):
            raise OverLimit(f"the sequence {raw.tag} holds data where an item should start "
                            "(damaged file)")
        count += 1
        if count > items_left:
            raise OverLimit(message)
        if length == 0xFFFFFFFF:
            rest = HeaderCounter(value[pos:], reads, message)
            read_sequence(rest, raw.is_implicit_VR, raw.is_little_endian, len(value) - pos,
                          ["iso8859"])
            return
        pos += 8 + length


def inflated(data: bytes, max_bytes: int) -> tuple[bytes, bool]:
    """A Deflated Explicit VR Little Endian file as the same file with its data set
    inflated here and its file meta naming a syntax pydicom reads as Explicit VR Little
    Endian (the caller restores the real one), and True; any other file as it is, and
    False.

    Raises OverLimit: the data set inflates to more than ``max_bytes``, or to more than
    MAX_RATIO times its size (beyond RATIO_FROM_BYTES), or is not deflate data.
    """
    if data[128:132] != b"DICM":
        return data, False
    pos, syntax = 132, None
    while pos + 8 <= len(data) and data[pos:pos + 2] == b"\x02\x00":  # the file meta group
        if data[pos + 4:pos + 6] in _LONG_VRS:
            header, length = 12, int.from_bytes(data[pos + 8:pos + 12], "little")
        else:
            header, length = 8, int.from_bytes(data[pos + 6:pos + 8], "little")
        if data[pos + 2:pos + 4] == b"\x10\x00":
            syntax = (pos + header, pos + header + length)
        pos += header + length
    if syntax is None or data[syntax[0]:syntax[1]].rstrip(b"\0 ") != _DEFLATED:
        return data, False
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    chunks, size, pending = [], 0, data[pos:]
    limit = min(max_bytes, max(MAX_RATIO * len(pending), RATIO_FROM_BYTES))
    try:
        while pending and not inflater.eof:
            chunk = inflater.decompress(pending, _CHUNK)
            pending = inflater.unconsumed_tail
            size += len(chunk)
            if size > max_bytes:
                raise OverLimit(f"the deflated data set expands to more than "
                                f"{max_bytes / 1e6:.0f} MB (the limit for one file)")
            if size > limit:
                raise OverLimit(f"the deflated data set expands more than {MAX_RATIO} times "
                                f"(to over {limit / 1e6:.1f} MB from "
                                f"{len(data) / 1e3:.0f} kB): refused as a deflate bomb")
            chunks.append(chunk)
    except zlib.error:
        raise OverLimit("the deflated data set is damaged (it does not inflate)") from None
    # Same length, so the meta group's length stays right; pydicom reads any transfer
    # syntax it does not know as Explicit VR Little Endian.
    plain = b"1.2.840.10008.1.2.1".ljust(syntax[1] - syntax[0], b"\0")
    return data[:syntax[0]] + plain + data[syntax[1]:pos] + b"".join(chunks), True
