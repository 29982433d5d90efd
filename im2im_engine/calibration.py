"""Physical pixel sizes *with their units*, read as the source file states them, never invented.

Why not aicsimageio's ``physical_pixel_sizes``: it has no units (an OME-TIFF in nanometres comes back as
325.0 and would be written out as 325 µm), and its TIFF reader turns a file with no calibration at all
(resolution 1/1, unit "none", what most tools write by default) into 1.0 µm. Exports that carry those
numbers make measurements wrong in every tool downstream. Here a size is either what the file says, in the
file's unit, or ``None``; exports write exactly that, and write nothing where the source has nothing.

Sources: OME-TIFF (``PhysicalSize*`` + ``PhysicalSize*Unit``, OME's default unit µm), ImageJ TIFF
(resolution tags in the ``unit`` of its description, ``spacing`` for z), plain TIFF (resolution tags in
inch / cm; unit "none" means uncalibrated), and for other formats (CZI, ND2, LIF, ...) aicsimageio's
values, which its readers report in µm (PNG/JPEG and ``.npy`` carry none).
"""

from __future__ import annotations

import os
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Unit spellings found in files -> the OME ``UnitsLength`` symbol written back.
UNIT_SYMBOLS = {
    "µm": "µm", "μm": "µm", "um": "µm", "micron": "µm", "microns": "µm", "micrometer": "µm",
    "micrometre": "µm", "\\u00b5m": "µm",
    "nm": "nm", "nanometer": "nm", "nanometre": "nm",
    "pm": "pm", "mm": "mm", "millimeter": "mm", "millimetre": "mm", "cm": "cm", "centimeter": "cm",
    "centimetre": "cm", "m": "m", "meter": "m", "metre": "m", "å": "Å", "angstrom": "Å", "in": "in",
    "inch": "in",
}
#: TIFF ResolutionUnit values (2 inch, 3 cm; 4/5 are tifffile's mm/µm extension); 1 means "no unit".
_TIFF_RESUNIT = {2: "in", 3: "cm", 4: "mm", 5: "µm"}
_TIFF_SUFFIXES = (".tif", ".tiff")


class CalibrationError(ValueError):
    """A calibration that cannot be written (a unit OME does not know). The message names the file."""


@dataclass(frozen=True)
class PixelSizes:
    """Size of one pixel along z, y, x with each axis' unit, as the source states it (None: not stated)."""

    z: float | None = None
    y: float | None = None
    x: float | None = None
    unit_z: str | None = None
    unit_y: str | None = None
    unit_x: str | None = None

    @property
    def values(self) -> tuple[float | None, float | None, float | None]:
        return self.z, self.y, self.x

    @property
    def units(self) -> tuple[str | None, str | None, str | None]:
        return self.unit_z, self.unit_y, self.unit_x

    @property
    def calibrated(self) -> bool:
        return any(v is not None for v in self.values)

    def planar(self) -> PixelSizes:
        """Without z: for a 2D (YX) file, a z size from a single-plane source describes nothing."""
        return PixelSizes(None, self.y, self.x, None, self.unit_y, self.unit_x)

    def writer_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`im2im_engine.io.write_ome_tiff` (nothing at all when uncalibrated)."""
        if not self.calibrated:
            return {}
        return {"physical_pixel_sizes": self.values, "physical_pixel_units": self.units}

    def describe(self) -> str:
        """``"y 0.325 µm, x 0.325 µm"``; empty when uncalibrated (for CSV columns and messages)."""
        parts = [f"{axis} {value:g} {unit}" for axis, value, unit in zip("zyx", self.values, self.units, strict=True)
                 if value is not None]
        return ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {axis: ({"size": v, "unit": u} if v is not None else None)
                for axis, v, u in zip("zyx", self.values, self.units, strict=True)}


UNCALIBRATED = PixelSizes()


def unit_symbol(unit: Any, path: str | os.PathLike = "<file>") -> str:
    """The OME symbol for a unit spelling; :class:`CalibrationError` for one OME cannot express."""
    text = str(getattr(unit, "value", unit)).strip()
    symbol = UNIT_SYMBOLS.get(text.lower()) or UNIT_SYMBOLS.get(text)
    if symbol is None:
        raise CalibrationError(f"{path}: pixel size unit {text!r} is not a length unit OME-TIFF can store")
    return symbol


def _positive(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if v > 0 and v == v and v != float("inf") else None


def _from_ome_xml(xml: str, path: Path) -> PixelSizes:
    """The first image's ``Pixels`` attributes (the image every reader here opens: scene 0)."""
    root = ET.fromstring(xml)
    pixels = next((el for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "Pixels"), None)
    if pixels is None:
        return UNCALIBRATED
    out: dict[str, Any] = {}
    for axis in "zyx":
        value = _positive(pixels.get(f"PhysicalSize{axis.upper()}"))
        out[axis] = value
        out[f"unit_{axis}"] = unit_symbol(pixels.get(f"PhysicalSize{axis.upper()}Unit") or "µm", path) \
            if value is not None else None
    return PixelSizes(**out)


def _resolution(tags: Any, name: str) -> float | None:
    """Pixel size from a TIFF resolution tag (pixels per unit as a fraction) -> units per pixel."""
    tag = tags.get(name)
    if tag is None:
        return None
    value = tag.value
    num, den = value if isinstance(value, tuple) else (value, 1)
    return _positive(den / num) if num else None


def _from_tiff(path: Path) -> PixelSizes | None:
    """OME, ImageJ or plain TIFF; None when tifffile cannot open it (the caller falls back)."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            if tif.is_ome and tif.ome_metadata:
                return _from_ome_xml(tif.ome_metadata, path)
            tags = tif.pages[0].tags
            if tif.is_imagej:
                meta = tif.imagej_metadata or {}
                unit = meta.get("unit")
                if not unit or str(unit).lower() in ("pixel", "pixels", "none"):
                    return UNCALIBRATED
                symbol = unit_symbol(unit, path)
                y, x = _resolution(tags, "YResolution"), _resolution(tags, "XResolution")
                z = _positive(meta.get("spacing"))
                return PixelSizes(z, y, x, symbol if z else None, symbol if y else None, symbol if x else None)
            unit_tag = tags.get("ResolutionUnit")
            # TIFF 6.0: ResolutionUnit defaults to inch when absent; 1 ("none") means no absolute unit.
            code = int(unit_tag.value) if unit_tag is not None else 2
            symbol = _TIFF_RESUNIT.get(code)
            if symbol is None:
                return UNCALIBRATED
            y, x = _resolution(tags, "YResolution"), _resolution(tags, "XResolution")
            return PixelSizes(None, y, x, None, symbol if y else None, symbol if x else None)
    except CalibrationError:
        raise
    except Exception:
        return None


def read_pixel_sizes(path: str | os.PathLike) -> PixelSizes:
    """The physical pixel size of ``path`` as the file states it, with units; uncalibrated when it states none.

    Raises :class:`CalibrationError` for a unit OME cannot store, and ``ImageReadError`` (from
    :mod:`.io`) when the file cannot be opened at all.
    """
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return UNCALIBRATED
    if path.name.lower().endswith(_TIFF_SUFFIXES):
        found = _from_tiff(path)
        if found is not None:
            return found
    from . import io

    img = io._open(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pps = img.physical_pixel_sizes
    except Exception:
        return UNCALIBRATED
    values = [_positive(v) for v in (pps.Z, pps.Y, pps.X)]
    return PixelSizes(*values, *("µm" if v is not None else None for v in values))  # aicsimageio reports µm
