"""Why a file did not decode: Pillow's many exception types -> one ``(kind, reason)``.

Decoders raise ``OSError``, ``SyntaxError``, ``ValueError``, ``NotImplementedError``,
``struct.error``, ``IndexError``, ``MemoryError``... and say "truncated or corrupt" of files
that only need a missing codec. :func:`classify` turns each into one of :data:`FAILURE_KINDS`
and a reason a user can act on. It keeps only strings: nothing refers to the exception (whose
traceback holds the partly decoded image) once the caller's ``except`` block ends.
"""

from __future__ import annotations

import re
from typing import Sequence

FAILURE_KINDS = {
    "not-image": "not an image file (or a format Pillow cannot identify)",
    "needs-codec": "an image that needs a codec or tool this installation lacks",
    "unsupported": "an image variant Pillow does not implement",
    "truncated": "the file ends before the image data does",
    "corrupt": "the image data is damaged",
    "bomb": "decompression bomb: more pixels than PIL.Image.MAX_IMAGE_PIXELS allows",
    "too-large": "not enough memory to decode it",
    "missing": "no such file, or a directory",
    "empty": "zero bytes",
    "unreadable": "the file cannot be read (permissions, I/O error)",
    "bad-input": "an input that is not an image (wrong type, bad array)",
}

# Formats Pillow cannot read, recognised by their first bytes when Pillow gives up.
_SIGNATURES: Sequence[tuple[int, tuple[bytes, ...], str, str]] = (
    (4, (b"ftypheic", b"ftypheix", b"ftyphevc", b"ftypmif1", b"ftypmsf1", b"ftypheim", b"ftypheis"), "needs-codec",
     "HEIC/HEIF image: needs the pillow-heif plugin (pip install pillow-heif, then pillow_heif.register_heif_opener())"),
    (4, (b"ftypjxl",), "needs-codec", "JPEG XL image: needs a JPEG XL plugin (e.g. pip install pillow-jxl-plugin)"),
    (0, (b"\xff\x0a", b"\x00\x00\x00\x0cJXL "), "needs-codec", "JPEG XL image: needs a JPEG XL plugin (e.g. pip install pillow-jxl-plugin)"),
    (0, (b"%PDF",), "not-image", "a PDF document, not an image (render its pages to PNG first)"),
    (0, (b"<svg", b"<?xml"), "not-image", "an XML/SVG text file, not a raster image (rasterise SVGs first, e.g. with cairosvg)"),
)

_DECODER_MISSING = re.compile(r"(?:decoder|encoder) (\S+) not available")


def sniff(head: bytes) -> tuple[str, str] | None:
    """(kind, reason) for a known format Pillow does not read, from the file's first bytes."""
    for offset, magics, kind, reason in _SIGNATURES:
        if any(head[offset : offset + len(m)] == m for m in magics):
            return kind, reason
    return None


def classify(exc: BaseException, fmt: str | None, head: bytes = b"") -> tuple[str, str]:
    """(kind, reason) for an exception raised while opening/decoding/converting an image."""
    from PIL import Image, UnidentifiedImageError

    fmt = fmt or _format_in_traceback(exc)
    what = f"{fmt} " if fmt else ""
    text = str(exc)
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return "bomb", f"decompression bomb refused: {text} (raise PIL.Image.MAX_IMAGE_PIXELS only for files you trust)"
    if isinstance(exc, UnidentifiedImageError):
        notes = _accept_notes(head)
        if notes:
            return "needs-codec", f"needs a codec this Pillow lacks ({'; '.join(notes)})"
        claimed = _claimed_format(head)
        if claimed:
            return "corrupt", f"damaged {claimed} file: it starts like one, but Pillow cannot parse it (truncated or corrupt)"
        return sniff(head) or ("not-image", "not an image, or a format Pillow cannot read")
    if isinstance(exc, MemoryError):
        return "too-large", f"not enough memory to decode this {what}image"
    missing = _DECODER_MISSING.search(text)
    if missing:
        return "needs-codec", f"needs the {missing.group(1)} codec, which this Pillow build lacks ({text})"
    if "ghostscript" in text.lower():
        return "needs-codec", f"needs Ghostscript to render this {what}file ({text})"
    if "cannot find loader" in text.lower() or "not supported on this platform" in text.lower():
        return "needs-codec", f"needs a renderer Pillow does not have here ({what.strip() or 'format'}: {text})"
    if isinstance(exc, NotImplementedError) or re.search(r"unsupported|not supported|unknown (?:compression|mode|pixel)", text, re.I):
        return "unsupported", f"unsupported {what}variant ({type(exc).__name__}: {text or 'no detail'})"
    if re.search(r"truncated|premature end|unexpected end|end of file|\beof\b|not enough (?:image )?data|incomplete|expected to read|"
                 r"buffer is not large enough", text, re.I):
        return "truncated", f"truncated {what}file ({text})"
    return "corrupt", f"corrupt {what}data ({type(exc).__name__}: {text or 'no detail'})"


def _claimed_format(head: bytes) -> str | None:
    """The format whose signature ``head`` carries (Pillow's own ``_accept`` checks), if any."""
    from PIL import Image

    for fmt, (_, accept) in Image.OPEN.items():
        try:
            if accept is not None and accept(head[:16]) is True and fmt not in ("MPEG",):
                return fmt
        except Exception:
            continue
    return None


def _format_in_traceback(exc: BaseException) -> str | None:
    """The format of the image plugin that raised (``Image.open`` fails before returning it)."""
    from PIL import Image

    tb = exc.__traceback__
    found = None
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, Image.Image) and getattr(owner, "format", None):
            found = owner.format
        tb = tb.tb_next
    return found


def _accept_notes(head: bytes) -> list[str]:
    """What format checks say instead of accepting ``head`` (e.g. "... AVIF support not installed")."""
    from PIL import Image

    notes = []
    for _, accept in Image.OPEN.values():
        try:
            result = accept(head[:16]) if accept is not None else None
        except Exception:
            continue
        if isinstance(result, str):
            notes.append(result)
    return notes
