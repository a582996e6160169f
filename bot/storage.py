"""Where media files live. A local folder by default; the interface is what an object store must offer."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from PIL import Image, ImageOps, UnidentifiedImageError


class MediaStore(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...


class LocalMediaStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"media key {key!r} escapes the media root")
        return path

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + f".{os.getpid()}.part")
        partial.write_bytes(data)
        os.replace(partial, path)  # readers never see half a file

    def get(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()


# ---------------------------------------------------------------------------- photos uploaded by staff

PHOTO_FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"), "WEBP": ("webp", "image/webp")}
MAX_PHOTO_PIXELS = 40_000_000  # what the media worker accepts too: no decompression bombs
MAX_PHOTO_SIDE = 2560  # longer side kept; a phone's 4000-px original is more than a case record needs
THUMB_SIDE = 320


class PhotoRefused(Exception):
    """`reason`: "too_big" or "not_image"; nothing about the file is kept."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True)
class CleanPhoto:
    """A photo decoded and encoded again: same format, upright, no EXIF (GPS), XMP, comments or text chunks."""

    data: bytes
    extension: str
    content_type: str
    width: int
    height: int
    sha256: str

    def key(self, now: datetime) -> str:
        """Content-addressed, laid out as the media worker lays out residents' photos."""
        return f"{now:%Y/%m}/{self.sha256[:2]}/{self.sha256}.{self.extension}"


def clean_photo(data: bytes, max_bytes: int) -> CleanPhoto:
    """Check by content that this is a JPEG, PNG or WebP within the limits, and strip its metadata.

    Re-encoding (rather than cutting EXIF segments out) also drops anything hidden after the image data.
    The EXIF orientation is applied to the pixels first, so the photo stays upright without its EXIF.
    """
    if len(data) > max_bytes:
        raise PhotoRefused("too_big", f"{len(data)} bytes is over the {max_bytes} byte limit")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format or ""
            if fmt not in PHOTO_FORMATS:
                raise PhotoRefused("not_image", f"format {fmt or 'unknown'} is not accepted")
            if image.width * image.height > MAX_PHOTO_PIXELS:
                raise PhotoRefused("not_image", f"{image.width}x{image.height} pixels is too many")
            image.load()
            upright = ImageOps.exif_transpose(image)
            icc = image.info.get("icc_profile")
    except PhotoRefused:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise PhotoRefused("not_image", f"not a readable image ({type(exc).__name__})") from None
    if upright.mode not in ("RGB", "RGBA", "L", "LA"):
        icc = None if upright.mode == "CMYK" else icc  # a CMYK profile would misdescribe the RGB pixels
        upright = upright.convert("RGBA" if "transparency" in upright.info or "A" in upright.mode else "RGB")
    if fmt == "JPEG" and upright.mode in ("RGBA", "LA"):
        upright = upright.convert("RGB")
    upright.thumbnail((MAX_PHOTO_SIDE, MAX_PHOTO_SIDE))
    upright.info = {}  # Pillow carries comments and text chunks over from `info` when saving
    options: dict[str, object] = {"icc_profile": icc} if icc else {}
    if fmt == "JPEG":
        options.update(quality=88, optimize=True)
    elif fmt == "WEBP":
        options.update(quality=85)
    out = io.BytesIO()
    upright.save(out, fmt, **options)
    cleaned = out.getvalue()
    extension, content_type = PHOTO_FORMATS[fmt]
    return CleanPhoto(
        cleaned, extension, content_type, upright.width, upright.height, hashlib.sha256(cleaned).hexdigest()
    )


def thumbnail_of(data: bytes) -> bytes:
    """A small upright JPEG without metadata, for the case page."""
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (THUMB_SIDE * 2, THUMB_SIDE * 2))  # JPEG decodes at a fraction of the size: fast
        small = ImageOps.exif_transpose(image)
        small = small.convert("RGB")
        small.thumbnail((THUMB_SIDE, THUMB_SIDE))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=80)
    return out.getvalue()
