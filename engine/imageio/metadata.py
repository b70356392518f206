"""Human-facing camera facts (camera, lens, ISO, exposure …) read with exifread."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Mapping, Optional, Union

import exifread

from ..photo import PhotoMetadata

#: Makes as cameras write them → how people name them.
_MAKE_NAMES: dict[str, str] = {
    "NIKON": "Nikon", "NIKON CORPORATION": "Nikon",
    "OLYMPUS": "Olympus", "OLYMPUS IMAGING CORP.": "Olympus", "OLYMPUS CORPORATION": "Olympus",
    "OLYMPUS OPTICAL CO.,LTD": "Olympus", "OM DIGITAL SOLUTIONS": "OM System",
    "EASTMAN KODAK COMPANY": "Kodak", "PENTAX": "Pentax", "PENTAX CORPORATION": "Pentax",
    "RICOH IMAGING COMPANY, LTD.": "Ricoh", "SAMSUNG": "Samsung", "SAMSUNG TECHWIN": "Samsung",
    "FUJIFILM": "Fujifilm", "SONY": "Sony", "CANON": "Canon", "PANASONIC": "Panasonic",
    "LEICA CAMERA AG": "Leica", "SEIKO EPSON CORP.": "Epson", "MINOLTA CO., LTD.": "Minolta",
    "KONICA MINOLTA": "Konica Minolta", "KONICA MINOLTA CAMERA, INC.": "Konica Minolta",
    "HUAWEI": "Huawei", "XIAOMI": "Xiaomi", "GOOGLE": "Google", "APPLE": "Apple", "HASSELBLAD": "Hasselblad",
}

_COMPANY_SUFFIX = re.compile(r"[\s,]+(corporation|corp\.?|co\.?,?\s*ltd\.?|company|inc\.?|ag|imaging)$", re.I)

_Source = Union[str, Path, bytes]


def tidy_camera(make: Optional[str], model: Optional[str]) -> Optional[str]:
    """``("NIKON CORPORATION", "NIKON D70")`` → ``"Nikon D70"``; ``("Canon", "Canon EOS 40D")``
    → ``"Canon EOS 40D"``; ``("NIKON", "COOLPIX P6000")`` → ``"Nikon COOLPIX P6000"``."""
    make = " ".join((make or "").split())
    model = " ".join((model or "").split())
    if make:
        known = _MAKE_NAMES.get(make.upper())
        if known is None:
            stripped = make
            while True:
                shorter = _COMPANY_SUFFIX.sub("", stripped)
                if shorter == stripped or not shorter:
                    break
                stripped = shorter
            known = _MAKE_NAMES.get(stripped.upper(), stripped)
        make = known
    if not model:
        return make or None
    if not make:
        return model
    if model.upper().startswith(make.upper()) and model[len(make):len(make) + 1] in ("", " "):
        return make + model[len(make):]
    return f"{make} {model}"


def _text(tags: Mapping[str, object], *names: str) -> Optional[str]:
    for name in names:
        tag = tags.get(name)
        if tag is None:
            continue
        value = str(getattr(tag, "printable", tag)).strip().strip("\x00").strip()
        if value and value.lower() not in ("unknown", "none", "0"):
            return value
    return None


def _number(tags: Mapping[str, object], *names: str) -> Optional[float]:
    for name in names:
        tag = tags.get(name)
        values = getattr(tag, "values", None)
        if not values:
            continue
        first = values[0] if isinstance(values, (list, tuple)) else values
        try:
            number = float(first)
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if number > 0:
            return number
    return None


def _date(tags: Mapping[str, object]) -> Optional[str]:
    raw = _text(tags, "EXIF DateTimeOriginal", "EXIF DateTimeDigitized", "Image DateTime")
    if raw is None:
        return None
    match = re.match(r"^(\d{4})[:\-](\d{2})[:\-](\d{2})[ T](\d{2}:\d{2}:\d{2})", raw)
    if match is None:
        return raw
    year, month, day, clock = match.groups()
    if year == "0000":
        return None
    return f"{year}-{month}-{day} {clock}"


def metadata_from_tags(tags: Mapping[str, object], orientation: int = 1) -> PhotoMetadata:
    """Build :class:`PhotoMetadata` from an exifread tag dictionary."""
    lens = _text(tags, "EXIF LensModel", "MakerNote LensModel", "EXIF LensSpecification")
    if lens is not None:
        lens_make = _text(tags, "EXIF LensMake")
        if lens_make and not lens.lower().startswith(lens_make.lower()):
            lens = f"{lens_make} {lens}"
    iso = _number(tags, "EXIF ISOSpeedRatings", "EXIF PhotographicSensitivity", "EXIF RecommendedExposureIndex")
    return PhotoMetadata(
        camera=tidy_camera(_text(tags, "Image Make"), _text(tags, "Image Model")),
        lens=lens,
        iso=int(round(iso)) if iso else None,
        exposure_s=_number(tags, "EXIF ExposureTime"),
        aperture_f=_number(tags, "EXIF FNumber"),
        focal_length_mm=_number(tags, "EXIF FocalLength"),
        date=_date(tags),
        orientation=orientation,
    )


def read_tags(source: _Source) -> dict[str, object]:
    """exifread's tags (no maker notes or thumbnails) from a file path or an EXIF block.

    Metadata is optional: a file exifread cannot parse yields ``{}``, never an error.
    """
    try:
        if isinstance(source, (bytes, bytearray)):
            return dict(exifread.process_file(io.BytesIO(bytes(source)), details=False))
        with open(source, "rb") as handle:
            return dict(exifread.process_file(handle, details=False))
    except Exception:  # noqa: BLE001 - third-party parser on untrusted bytes; metadata is optional
        return {}


def read_metadata(exif_block: Optional[bytes], path: Optional[Path] = None, orientation: int = 1) -> PhotoMetadata:
    """Camera facts from ``exif_block`` (TIFF-header form) or, when that is absent or says
    nothing, from the file at ``path`` (used for RAW files). ``orientation`` is recorded as given."""
    tags: dict[str, object] = read_tags(exif_block) if exif_block else {}
    if not tags and path is not None:
        tags = read_tags(path)
    return metadata_from_tags(tags, orientation=orientation)
