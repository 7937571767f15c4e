"""Reading one DICOM file safely: parse, check the limits, summarise, decode one frame.

Files come from other hospitals' PACS and from uploads, so nothing in them is trusted:
the 128-byte preamble is ignored (and can be blanked before storing), sizes are
checked before any pixel buffer is allocated, `check_structure` refuses the shapes
that crash a PACS (sequences nested too deep, too many elements, elements longer than
the file) before a file is forwarded, UIDs must be DICOM UIDs, and every failure becomes an
`ImagingError` whose message says what is wrong with the file in words an admin or a
clinician can act on. Rendering (windowing, PNG/JPEG) lives in `integrations.imaging`.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import get_decoder, pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import VR

from integrations import dicom_bounds
from integrations.dicom_uid import InvalidUid, is_uid

log = logging.getLogger(__name__)
_DECODER_LOG = logging.getLogger("pydicom.pixels.decoders.base")
_decoding = threading.local()


class _DecoderFailures(logging.Filter):
    """pydicom logs each plugin's failure with its traceback before trying the next
    one. While we decode, those records are kept (as the exceptions they carry) for the
    one-line reason, and never reach the log or the terminal."""

    def filter(self, record: logging.LogRecord) -> bool:
        seen = getattr(_decoding, "failures", None)
        if seen is None:
            return True
        if record.exc_info and record.exc_info[1] is not None:
            seen.append(record.exc_info[1])
        return False


_DECODER_LOG.addFilter(_DecoderFailures())


def _add_fallback_decoder() -> None:
    """GDCM after the other plugins, for what they cannot read (integrations.dicom_gdcm)."""
    from integrations import dicom_gdcm

    for syntax in dicom_gdcm.DECODER_DEPENDENCIES:
        decoder = get_decoder(syntax)
        if dicom_gdcm.is_available(syntax) and dicom_gdcm.LABEL not in decoder.available_plugins:
            decoder.add_plugin(dicom_gdcm.LABEL, ("integrations.dicom_gdcm", "decode_frame"))


_add_fallback_decoder()

MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_DIMENSION = 4096
MAX_FRAMES = 2000
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# The shape of a file that is forwarded to a PACS. Orthanc 1.10 (DCMTK) was seen to crash
# on a Content Sequence nested 50 deep; real structured reports stay under 10.
MAX_SEQUENCE_DEPTH = 16
MAX_ELEMENTS = 250_000  # every element, nested ones too (2000 frames of functional groups fit)
MAX_SEQUENCE_ITEMS = 50_000
MAX_HEADER_ELEMENT_BYTES = 16 * 1024 * 1024  # any one element but the bulk data below
# Bulk data: pixels, overlays, waveforms, an encapsulated PDF; the file size bounds these.
_BULK_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010, 0x00420011, 0x54001010,
                        0x56000020, 0x50003000})
_UNDEFINED = 0xFFFFFFFF
_KNOWN_VRS = frozenset(v.value for v in VR)
# Elements that a real DICOM object carries; a force-read of random bytes has none.
_RECOGNISABLE = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "Modality", "Rows")


class ImagingError(Exception):
    """A DICOM file cannot be read, validated or rendered; the message says why."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class StudyMeta:
    """What the app needs to know about one instance to link, list and order it."""

    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class: str
    modality: str
    study_description: str
    series_description: str
    study_date: date | None
    patient_id: str
    rows: int
    columns: int
    frames: int
    instance_number: int | None
    slice_location: float | None
    image_position: tuple[float, float, float] | None
    transfer_syntax: str
    has_image: bool
    # The patient module, for workflow/imaging/identity.py's check before an upload.
    patient_name: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    other_patient_ids: tuple[str, ...] = ()


@contextmanager
def quiet_pydicom():
    """Silence pydicom's warnings about odd values in foreign files.

    They are expected from other vendors' files and would otherwise turn into errors
    under `-W error`; what matters is reported through `ImagingError` instead.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def guarded(function):
    """Keep the module's promise at its public edge: only ImagingError escapes.

    pydicom meets foreign bytes on many paths; a failure none of the specific checks
    foresaw is logged with its traceback (so it can be given its own message) and
    reported as an unreadable file.
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            with quiet_pydicom():
                return function(*args, **kwargs)
        except ImagingError:
            raise
        except Exception as exc:  # noqa: BLE001 - see the docstring
            log.warning("unforeseen failure reading a DICOM file", exc_info=True)
            raise ImagingError(f"the file could not be read ({_short(exc)})") from None

    return wrapper


def _header_reads() -> int:
    """What a data set within MAX_ELEMENTS and MAX_SEQUENCE_ITEMS can take to read (see
    `dicom_bounds.HeaderCounter`)."""
    return 2 * (MAX_ELEMENTS + MAX_SEQUENCE_ITEMS)


def _too_many_elements() -> str:
    return f"too many data elements (limit {MAX_ELEMENTS:,})"


def _too_many_items() -> str:
    return f"too many sequence items (limit {MAX_SEQUENCE_ITEMS:,})"


def _read(data: bytes, max_bytes: int) -> tuple[Dataset, bool]:
    """The dataset, and whether pydicom reached the end of the bytes mid-element.

    Raises OverLimit: too many element headers, or a deflated data set too large.
    """
    data, deflated = dicom_bounds.inflated(data, max_bytes)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        ds = pydicom.dcmread(
            dicom_bounds.HeaderCounter(data, _header_reads(), _too_many_elements()),
            force=True)
    if deflated:
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    cut_short = any("end of file" in str(w.message).lower() for w in seen)
    return ds, cut_short


@guarded
def read_dataset(data: bytes, *, max_bytes: int = MAX_FILE_BYTES) -> Dataset:
    """Parse ``data`` as one DICOM file (the preamble is ignored).

    A file without file meta is accepted only when it holds uncompressed pixel data
    whose encoding pydicom could infer; its transfer syntax is then filled in.

    Raises ImagingError: empty, too large, not DICOM, or no readable header.
    """
    if not data:
        raise ImagingError("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImagingError(
            f"file too large: {len(data) / 1e6:.0f} MB (limit {max_bytes / 1e6:.0f} MB)")
    marked = data[128:132] == b"DICM"
    try:
        ds, cut_short = _read(data, max_bytes)
        recognisable = any(_has(ds, k) for k in _RECOGNISABLE + PIXEL_KEYWORDS)
    except dicom_bounds.OverLimit as exc:
        raise ImagingError(str(exc)) from None
    except RecursionError:
        raise ImagingError(f"sequences nested too deep to read (limit {MAX_SEQUENCE_DEPTH} "
                           "levels)") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on foreign bytes
        if marked:
            raise ImagingError(f"damaged DICOM file ({_short(exc)})") from None
        raise ImagingError("not a DICOM file") from None
    if cut_short and (not recognisable or pixel_keyword(ds) is None):
        raise ImagingError("the file ends before its data does (truncated file)")
    if not recognisable:
        raise ImagingError("damaged DICOM file (no readable header)" if marked
                           else "not a DICOM file")
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        _infer_transfer_syntax(ds)
    syntax = transfer_syntax(ds)
    if not syntax.is_transfer_syntax:
        raise ImagingError(f"unsupported compression: unknown transfer syntax {str(syntax)!r}")
    return ds


def _infer_transfer_syntax(ds: Dataset) -> None:
    keyword = pixel_keyword(ds)
    if keyword is None:
        raise ImagingError("not a DICOM file (no file meta header and no image)")
    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None or little is None or _element(ds, keyword).is_undefined_length:
        raise ImagingError(
            "no file meta header, and the image encoding cannot be worked out without it")
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = (
        ImplicitVRLittleEndian if implicit else
        ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


@guarded
def check_structure(ds: Dataset) -> None:
    """Refuse a file whose shape could crash the PACS it is forwarded to (or us).

    Raises ImagingError: sequences nested more than MAX_SEQUENCE_DEPTH levels, more than
    MAX_ELEMENTS elements or MAX_SEQUENCE_ITEMS sequence items in all, an element other
    than bulk data longer than MAX_HEADER_ELEMENT_BYTES, an element that says it is
    longer than what the file holds, or an undefined length on an element that is
    neither a sequence nor bulk data.
    """
    elements = items = 0
    pending: list[tuple[Dataset, int]] = [(ds, 0)]
    while pending:  # a stack, not recursion: the depth is what is being checked
        dataset, depth = pending.pop()
        for tag in list(dataset.keys()):
            raw = dataset.get_item(tag, keep_deferred=True)  # not converted yet
            elements += 1
            if elements > MAX_ELEMENTS:
                raise ImagingError(_too_many_elements())
            tag = int(raw.tag)
            if isinstance(raw, RawDataElement):
                _check_raw(raw, tag)
                if (raw.VR or _dictionary_vr(tag)) != "SQ":
                    continue
                try:
                    dicom_bounds.check_sequence(raw, MAX_SEQUENCE_ITEMS - items, _header_reads(),
                                                _too_many_items())
                except dicom_bounds.OverLimit as exc:
                    raise ImagingError(str(exc)) from None
            element = dataset[tag]
            if element.VR != "SQ":
                continue
            if depth + 1 > MAX_SEQUENCE_DEPTH:
                raise ImagingError(
                    f"sequences nested more than {MAX_SEQUENCE_DEPTH} levels deep (at "
                    f"{element.name}): refused, since a PACS can crash on such a file")
            items += len(element.value)
            if items > MAX_SEQUENCE_ITEMS:
                raise ImagingError(_too_many_items())
            pending.extend((item, depth + 1) for item in element.value)


def _check_raw(raw: RawDataElement, tag: int) -> None:
    bulk = tag in _BULK_TAGS or (tag & 0xFF00FFFF) in _BULK_TAGS
    where = f"element ({tag >> 16:04X},{tag & 0xFFFF:04X})"
    if raw.VR is not None and raw.VR not in _KNOWN_VRS:
        raise ImagingError(f"{where} has a value representation that DICOM does not define "
                           f"({raw.VR!r})")
    if raw.length == _UNDEFINED:
        if not bulk and (raw.VR or _dictionary_vr(tag)) not in ("SQ", "UN"):
            raise ImagingError(f"{where} has an undefined length, which only sequences and "
                               "compressed pixel data may have")
        return
    held = len(raw.value or b"")
    if held < raw.length and not bulk:  # short image data has its own message (geometry)
        raise ImagingError(f"{where} says it holds {raw.length:,} bytes but the file ends "
                           f"after {held:,} of them (truncated or damaged file)")
    if not bulk and raw.length > MAX_HEADER_ELEMENT_BYTES:
        raise ImagingError(f"{where} is {raw.length / 1e6:.0f} MB (limit "
                           f"{MAX_HEADER_ELEMENT_BYTES / 1e6:.0f} MB for anything but "
                           "image data)")


def _dictionary_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def without_preamble(data: bytes) -> bytes:
    """``data`` with its 128-byte preamble blanked, so a polyglot file cannot be stored."""
    if data[128:132] == b"DICM":
        return bytes(128) + data[128:]
    return data


def pixel_keyword(ds: Dataset) -> str | None:
    """The keyword of the dataset's pixel data element, or None when it holds no image."""
    return next((k for k in PIXEL_KEYWORDS if _has(ds, k)), None)


def transfer_syntax(ds: Dataset) -> UID:
    return UID(str(_value(ds.file_meta, "TransferSyntaxUID", "")).strip())


@guarded
def object_kind(ds: Dataset) -> str:
    """'RT Plan', 'Comprehensive SR', ... from the SOP Class, for messages."""
    sop_class = UID(str(_value(ds, "SOPClassUID", "") or ""))
    name = sop_class.name if sop_class else ""
    if not name or name == str(sop_class):
        return str(_value(ds, "Modality", "") or "unknown kind of object")
    return name.removesuffix(" Storage").removesuffix(" Image")


@dataclass(frozen=True)
class Geometry:
    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    photometric: str

    @property
    def frame_bytes(self) -> int:
        if self.bits_allocated == 1:
            return math.ceil(self.rows * self.columns * self.samples / 8)
        per_pixel = self.samples * self.bits_allocated // 8
        if self.photometric == "YBR_FULL_422":
            per_pixel = 2 * self.bits_allocated // 8
        return self.rows * self.columns * per_pixel


@guarded
def geometry(ds: Dataset) -> Geometry:
    """Check the image header against the limits before anything is decoded.

    Raises ImagingError: no image, invalid or out-of-limit dimensions, frame count,
    bit depth, unsupported compression, or native pixel data shorter than the header says.
    """
    keyword = pixel_keyword(ds)
    if keyword is None:
        kind = object_kind(ds)
        if "Image Storage" in UID(str(_value(ds, "SOPClassUID", "") or "")).name:
            raise ImagingError(f"no pixel data in this {kind} image (truncated file?)")
        raise ImagingError(f"no image in this file ({kind})")
    rows, columns = _int(ds, "Rows", None), _int(ds, "Columns", None)
    if not rows or not columns or rows < 0 or columns < 0:
        raise ImagingError("the header gives no image size (Rows/Columns missing or zero)")
    if rows > MAX_DIMENSION or columns > MAX_DIMENSION:
        raise ImagingError(f"image too large: {columns} x {rows} (limit {MAX_DIMENSION})")
    frames = _int(ds, "NumberOfFrames", 1) or 1
    if frames < 1 or frames > MAX_FRAMES:
        raise ImagingError(f"too many frames: {frames} (limit {MAX_FRAMES})" if frames > 0
                           else f"invalid Number of Frames in the header: {frames}")
    samples = _int(ds, "SamplesPerPixel", 1)
    if samples not in (1, 3):
        raise ImagingError(f"unsupported Samples per Pixel: {samples}")
    bits = {"PixelData": None, "FloatPixelData": 32, "DoubleFloatPixelData": 64}[keyword]
    bits = bits or _int(ds, "BitsAllocated", None)
    if bits not in (1, 8, 16, 32, 64):
        raise ImagingError(f"unsupported Bits Allocated: {bits}")
    photometric = str(_value(ds, "PhotometricInterpretation", "") or "").strip().upper()
    shape = Geometry(rows, columns, frames, samples, bits, photometric)
    syntax = transfer_syntax(ds)
    if _element(ds, keyword).is_undefined_length or syntax.is_compressed:
        _require_decoder(syntax)
    else:
        present = len(_element(ds, keyword).value or b"")
        if present < shape.frame_bytes * frames:
            raise ImagingError("pixel data is shorter than the image size says (truncated file)")
    return shape


def _require_decoder(syntax: UID) -> None:
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        decoder = None
    if decoder is None or not decoder.is_available:
        raise ImagingError(f"unsupported compression: {syntax.name}")


@guarded
def decode_frame(ds: Dataset, frame: int = 1) -> np.ndarray:
    """Stored pixel values of one frame (1-based); colour comes back as RGB.

    Raises ImagingError: no such frame, or the pixel data cannot be decoded.
    """
    shape = geometry(ds)
    if not 1 <= frame <= shape.frames:
        raise ImagingError(f"no frame {frame} in this image (it has {shape.frames})")
    _decoding.failures = []
    try:
        with quiet_pydicom():
            pixels = pixel_array(ds, index=frame - 1)
    except Exception as exc:  # noqa: BLE001 - translate every decoder failure
        raise _decode_error(ds, exc, _decoding.failures) from None
    finally:
        _decoding.failures = None
    if pixels.shape[:2] != (shape.rows, shape.columns):
        raise ImagingError(f"decoded image is {pixels.shape[1]} x {pixels.shape[0]}, "
                           f"the header says {shape.columns} x {shape.rows}")
    return pixels


_SYNTAX_WORDS = {"1.2.840.10008.1.2.4.51": "JPEG Extended"}


def _decode_error(ds: Dataset, exc: Exception, failures: list[Exception]) -> ImagingError:
    """The real cause of a failed decode, in one line: a truncated file, a compression
    (at this bit depth) that no installed decoder supports, or damaged data — with what
    the decoder that got furthest said."""
    text = str(exc)
    if "less than expected" in text or "truncated" in text.lower():
        return ImagingError("pixel data is shorter than the image size says (truncated file)")
    syntax = transfer_syntax(ds)
    if not syntax.is_compressed:
        return ImagingError(f"the image could not be decoded ({_short(exc)})")
    bits = _int(ds, "BitsStored", None)
    kind = _SYNTAX_WORDS.get(str(syntax), syntax.name)
    unsupported = [f for f in failures if isinstance(f, NotImplementedError)
                   or "not support" in str(f).lower()]
    # A decoder's own words; an AttributeError or TypeError is a plugin tripping over
    # the data, which says nothing a reader can use.
    told = [f for f in failures if f not in unsupported
            and not isinstance(f, AttributeError | TypeError)]
    said = _short(told[0]) if told else ""
    if unsupported:  # a decoder that knows this compression said it cannot do this kind
        depth = f" {bits}-bit" if bits else ""
        other = f"; another decoder failed: {said[:100]}" if said else ""
        return ImagingError(f"{kind}{depth} is not supported by the installed decoders"
                            f"{other}")
    said = said or _short(exc)
    return ImagingError(f"the compressed image is damaged: {syntax.name} could not be "
                        f"decoded ({said[:100]})")


@guarded
def _other_ids(ds: Dataset) -> tuple[str, ...]:
    value = _value(ds, "OtherPatientIDs", "")
    if not value:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(str(v).strip()[:64] for v in items if str(v).strip())[:10]


def summarise(ds: Dataset) -> StudyMeta:
    """UIDs, description, date, size and slice position of one instance.

    Raises ImagingError: a value in the header cannot be read, or a study, series or
    SOP instance UID that is there is not a DICOM UID (they go into PACS request paths).
    """
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        uid = _text(ds, keyword)
        if uid and not is_uid(uid):
            raise ImagingError(InvalidUid(_label(keyword), uid).message)
    has_image = pixel_keyword(ds) is not None
    shape = geometry(ds) if has_image else None
    position = _floats(ds, "ImagePositionPatient") or _frame_position(ds)
    return StudyMeta(
        study_uid=_text(ds, "StudyInstanceUID"),
        series_uid=_text(ds, "SeriesInstanceUID"),
        sop_uid=_text(ds, "SOPInstanceUID"),
        sop_class=_text(ds, "SOPClassUID"),
        modality=_text(ds, "Modality"),
        study_description=_text(ds, "StudyDescription"),
        series_description=_text(ds, "SeriesDescription"),
        study_date=_date(_text(ds, "StudyDate")),
        patient_id=_text(ds, "PatientID"),
        rows=shape.rows if shape else 0,
        columns=shape.columns if shape else 0,
        frames=shape.frames if shape else 0,
        instance_number=_int(ds, "InstanceNumber", None),
        slice_location=_float(ds, "SliceLocation"),
        image_position=tuple(position[:3]) if position and len(position) >= 3 else None,
        transfer_syntax=str(transfer_syntax(ds)),
        has_image=has_image,
        patient_name=_text(ds, "PatientName"),
        patient_birth_date=_text(ds, "PatientBirthDate"),
        patient_sex=_text(ds, "PatientSex"),
        other_patient_ids=_other_ids(ds),
    )


def _frame_position(ds: Dataset) -> list[float] | None:
    groups = _value(ds, "PerFrameFunctionalGroupsSequence", None)
    if not groups:
        return None
    planes = _value(groups[0], "PlanePositionSequence", None)
    return _floats(planes[0], "ImagePositionPatient") if planes else None


# Header access that turns pydicom's conversion failures into ImagingError.

def _element(ds: Dataset, keyword: str):
    try:
        with quiet_pydicom():
            return ds[keyword]
    except Exception as exc:  # noqa: BLE001 - a raw value pydicom cannot convert
        raise ImagingError(f"invalid {_label(keyword)} in the header ({_short(exc)})") from None


def _has(ds: Dataset, keyword: str) -> bool:
    return keyword in ds


def _value(ds: Dataset, keyword: str, default):
    if keyword not in ds:
        return default
    value = _element(ds, keyword).value
    return default if value is None or value == "" else value


def _int(ds: Dataset, keyword: str, default):
    value = _value(ds, keyword, default)
    if value is default:
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ImagingError(f"invalid {_label(keyword)} in the header: {str(value)!r}") from None


def _float(ds: Dataset, keyword: str) -> float | None:
    value = _value(ds, keyword, None)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        raise ImagingError(f"invalid {_label(keyword)} in the header: {str(value)!r}") from None


def _floats(ds: Dataset, keyword: str) -> list[float] | None:
    value = _value(ds, keyword, None)
    if value is None:
        return None
    try:
        values = value if hasattr(value, "__iter__") and not isinstance(value, str) else [value]
        return [float(v) for v in values]
    except (TypeError, ValueError):
        raise ImagingError(f"invalid {_label(keyword)} in the header: {str(value)!r}") from None


def _text(ds: Dataset, keyword: str) -> str:
    return str(_value(ds, keyword, "")).strip()


def _date(text: str) -> date | None:
    try:
        return date(int(text[0:4]), int(text[4:6]), int(text[6:8])) if len(text) >= 8 else None
    except ValueError:
        return None


def _label(keyword: str) -> str:
    """'NumberOfFrames' -> 'Number of Frames' for messages."""
    from pydicom.datadict import dictionary_description, tag_for_keyword

    tag = tag_for_keyword(keyword)
    return dictionary_description(tag) if tag is not None else keyword


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:120]
