"""Microscopy image I/O with explicit dimensions.

Everything the engine reads comes through here so the rest of the code can rely on one layout:
``(C, Z, Y, X)`` for a single timepoint. aicsimageio does the format work (TIFF, OME-TIFF, PNG/JPEG, and
CZI/ND2/LIF when their reader plugins are installed); reads are lazy (dask) so a time series or a huge
file only loads the plane block asked for. Writing is OME-TIFF so metadata survives a round trip.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Extensions tried on import. Others are skipped silently (a folder often has notes, CSVs, ...).
IMAGE_SUFFIXES = (
    ".tif", ".tiff", ".ome.tif", ".ome.tiff", ".png", ".jpg", ".jpeg", ".czi", ".nd2", ".lif", ".npy",
)

#: Refuse to allocate more than this many elements for one timepoint (guards against hostile headers).
MAX_ELEMENTS = int(os.environ.get("IM2IM_MAX_ELEMENTS", 4 * 1024**3))


class ImageReadError(ValueError):
    """A file could not be read as an image. The message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class ImageInfo:
    """What registering an image needs to know, read from metadata only (no pixels)."""

    path: str
    shape: tuple[int, ...]  # (T, C, Z, Y, X)
    dims: str  # always "TCZYX"
    dtype: str
    channel_names: list[str] = field(default_factory=list)
    physical_pixel_sizes: tuple[float | None, float | None, float | None] = (None, None, None)

    @property
    def n_timepoints(self) -> int:
        return self.shape[0]

    @property
    def n_channels(self) -> int:
        return self.shape[1]

    @property
    def is_3d(self) -> bool:
        return self.shape[2] > 1

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """(Z, Y, X) for stacks, (Y, X) for planes."""
        z, y, x = self.shape[2:]
        return (z, y, x) if z > 1 else (y, x)


@dataclass
class ImageData:
    """One timepoint of an image: ``data`` is ``(C, Z, Y, X)``."""

    data: np.ndarray
    info: ImageInfo

    @property
    def spatial(self) -> np.ndarray:
        """``(C, Y, X)`` for planes, ``(C, Z, Y, X)`` for stacks."""
        return self.data[:, 0] if self.data.shape[1] == 1 else self.data


def is_image_file(path: Path) -> bool:
    name = path.name.lower()
    return not name.startswith(".") and name.endswith(IMAGE_SUFFIXES)


def find_images(folder: str | os.PathLike) -> list[Path]:
    """Every file under ``folder`` (recursively) whose name looks like an image, sorted for determinism."""
    root = Path(folder)
    if not root.exists():
        raise FileNotFoundError(f"{root}: folder does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))


def _open(path: Path):
    """Open with aicsimageio; map every failure to one readable :class:`ImageReadError`."""
    if not path.exists():
        raise ImageReadError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")
    from aicsimageio import AICSImage
    from aicsimageio.exceptions import UnsupportedFileFormatError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = AICSImage(path)
            _ = img.dims  # forces the header to be parsed
        return img
    except UnsupportedFileFormatError as exc:
        if path.suffix.lower() in _FORMATS:  # a .tif/.png/.jpg no reader took: damaged or misnamed
            raise ImageReadError(path, describe_unreadable(path, exc)) from None
        raise ImageReadError(
            path, "unsupported format (for CZI/ND2/LIF install the matching aicsimageio reader plugin)"
        ) from None
    except Exception as exc:  # corrupt headers raise all sorts of things
        raise ImageReadError(path, describe_unreadable(path, exc)) from None


def check_size(path: str | os.PathLike, shape: Sequence[int]) -> None:
    """Refuse more than :data:`MAX_ELEMENTS` elements, before anything is allocated."""
    n = int(np.prod([int(s) for s in shape], dtype=object))
    if n > MAX_ELEMENTS:
        raise ImageReadError(path, f"one timepoint has {n:,} pixels, more than the limit of {MAX_ELEMENTS:,}")


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a .npy header alone (no pixels read)."""
    try:
        with open(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    except Exception as exc:
        raise ImageReadError(path, f"not a readable .npy array ({exc})") from None
    return tuple(shape), dtype


def _info_from_npy(path: Path) -> tuple[ImageInfo, np.ndarray]:
    if not path.exists():
        raise ImageReadError(path, "file does not exist")
    shape, _ = _npy_header(path)
    check_size(path, shape)
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise ImageReadError(path, f"not a readable .npy array ({exc})") from None
    check_dtype(path, str(arr.dtype))
    data = as_czyx(arr, path)
    info = ImageInfo(str(path), (1, *data.shape), "TCZYX", str(arr.dtype), [f"C{i}" for i in range(data.shape[0])])
    return info, data


def as_czyx(arr: np.ndarray, path: str | os.PathLike = "<array>") -> np.ndarray:
    """Interpret a bare array: (Y,X) -> plane; (Z,Y,X) -> stack; (C,Z,Y,X) kept. Used for .npy inputs."""
    if arr.ndim == 2:
        return arr[None, None]
    if arr.ndim == 3:
        return arr[None]
    if arr.ndim == 4:
        return arr
    raise ImageReadError(path, f"array has {arr.ndim} dimensions; expected (Y,X), (Z,Y,X) or (C,Z,Y,X)")


def check_dtype(path: Path, dtype: str) -> None:
    """Intensities must be real numbers; complex, string or object data is not a microscopy image."""
    kind = np.dtype(dtype).kind
    if kind not in "buif":
        raise ImageReadError(path, f"unsupported pixel type {dtype} (expected integer, float or bool pixels)")


def image_info(path: str | os.PathLike) -> ImageInfo:
    """Shape, dims, dtype and channel names from metadata, without reading pixels."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return _info_from_npy(path)[0]
    img = _open(path)
    try:
        dims = img.dims
        shape = (dims.T, dims.C, dims.Z, dims.Y, dims.X)
        dtype = str(img.dtype)
        names = [str(c) for c in (img.channel_names or [])]
        pps = img.physical_pixel_sizes
        sizes = (pps.Z, pps.Y, pps.X)
    except Exception as exc:
        raise ImageReadError(path, f"cannot read metadata ({type(exc).__name__}: {exc})") from None
    if min(shape) < 1:
        raise ImageReadError(path, f"image has an empty dimension (TCZYX = {shape})")
    check_dtype(path, dtype)
    if len(names) != shape[1]:
        names = [f"C{i}" for i in range(shape[1])]
    return ImageInfo(str(path), shape, "TCZYX", dtype, names, sizes)


def read_image(path: str | os.PathLike, t: int = 0, channels: Sequence[int] | None = None) -> ImageData:
    """Read one timepoint as ``(C, Z, Y, X)``. Only that timepoint (and those channels) are loaded."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        info, data = _info_from_npy(path)
        data = np.asarray(data if channels is None else data[list(channels)])
        return ImageData(data, info)
    info = image_info(path)
    if not 0 <= t < info.n_timepoints:
        raise ImageReadError(path, f"timepoint {t} out of range (image has {info.n_timepoints})")
    check_size(path, info.shape[1:])
    img = _open(path)
    try:
        kwargs = {"T": t}
        if channels is not None:
            kwargs["C"] = list(channels)
        data = img.get_image_dask_data("CZYX", **kwargs).compute()
    except Exception as exc:
        raise ImageReadError(path, describe_unreadable(path, exc)) from None
    if data.ndim != 4:  # a single requested channel can be squeezed by some readers
        data = data.reshape((-1, *data.shape[-3:]))
    return ImageData(np.asarray(data), info)


def to_spatial(data: np.ndarray, spatial_dims: int) -> np.ndarray:
    """``(C, Z, Y, X)`` -> engine layout: ``(C, Y, X)`` for 2D (Z must be 1), unchanged for 3D."""
    if data.ndim != 4:
        raise ValueError(f"expected (C, Z, Y, X), got shape {data.shape}")
    if spatial_dims == 2:
        if data.shape[1] != 1:
            raise ValueError(f"image is a stack of {data.shape[1]} planes but the model is 2D (one plane per image); "
                             "use a 3D config, or a max projection")
        return data[:, 0]
    if spatial_dims == 3:
        return data
    raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")


def read_mask(path: str | os.PathLike, expected_spatial: tuple[int, ...] | None = None) -> np.ndarray:
    """Read a label image: ``(Y, X)`` or ``(Z, Y, X)`` integers. RGB and shape mismatches are errors."""
    path = Path(path)
    img = read_image(path)
    data = img.data
    if data.shape[0] != 1:
        raise ImageReadError(path, f"mask has {data.shape[0]} channels (RGB?); a label image needs one")
    mask = data[0, 0] if data.shape[1] == 1 else data[0]
    if np.issubdtype(mask.dtype, np.floating) and (
        not np.all(np.isfinite(mask)) or not np.all(mask == np.round(mask))
    ):
        raise ImageReadError(path, "mask has non-integer values; expected integer labels")
    if mask.size and (mask.min() < 0):
        raise ImageReadError(path, "mask has negative label values")
    if mask.size and mask.max() > np.iinfo(np.int32).max:
        raise ImageReadError(path, f"mask label values up to {mask.max()} exceed int32")
    mask = mask.astype(np.int32)
    if expected_spatial is not None and tuple(mask.shape) != tuple(expected_spatial):
        raise ImageReadError(path, f"mask shape {mask.shape} differs from its image {tuple(expected_spatial)}")
    return mask


def _atomic_target(path: Path) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.ome.tif", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_ome_tiff(
    path: str | os.PathLike,
    data: np.ndarray,
    dim_order: str | None = None,
    channel_names: Sequence[str] | None = None,
    physical_pixel_sizes: tuple[float | None, float | None, float | None] | None = None,
    physical_pixel_units: tuple[str | None, str | None, str | None] | None = None,
) -> Path:
    """Write an OME-TIFF atomically (temp file + rename). ``dim_order`` defaults from ndim (YX, ZYX, CZYX).

    Sizes are (z, y, x); ``physical_pixel_units`` their OME unit symbols (default µm). The file gets the
    permissions of any file the user creates (umask), not the temp file's private 0600: these files are
    exports that colleagues open.
    """
    from aicsimageio.types import PhysicalPixelSizes
    from aicsimageio.writers import OmeTiffWriter

    from .atomic import follow_umask

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(data)
    if dim_order is None:
        dim_order = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}[data.ndim]
    if data.dtype == np.int64:
        data = data.astype(np.int32)
    sizes = PhysicalPixelSizes(*physical_pixel_sizes) if physical_pixel_sizes is not None else \
        PhysicalPixelSizes(None, None, None)
    ome = OmeTiffWriter.build_ome([data.shape], [data.dtype], dimension_order=[dim_order],
                                  channel_names=[list(channel_names) if channel_names is not None else None],
                                  image_name=[None], physical_pixel_sizes=[sizes], channel_colors=[None])
    if physical_pixel_units is not None:
        pixels = ome.images[0].pixels
        for axis, unit in zip("zyx", physical_pixel_units, strict=True):
            if unit is not None and getattr(pixels, f"physical_size_{axis}") is not None:
                setattr(pixels, f"physical_size_{axis}_unit", unit)
    tmp = _atomic_target(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            OmeTiffWriter.save(data, tmp, dim_order=dim_order, ome_xml=ome)
        follow_umask(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_array(path: str | os.PathLike) -> np.ndarray:
    """Read a target/weight array (``.npy`` or any image file) as it is stored, squeezing T/Z/C of size 1."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        check_size(path, _npy_header(path)[0])
        return np.load(path, allow_pickle=False)
    data = read_image(path).data
    return data[0, 0] if data.shape[:2] == (1, 1) else (data[0] if data.shape[0] == 1 else data)


# ------------------------------------------------------------------------------------ fitting and diagnosis
# Helpers for importing images into a project (annotation.importer): what is wrong with an unreadable file,
# in words; the colour samples of an RGB file; and one timepoint read with colour samples as channels, one
# channel picked and/or the stack max-projected. Nothing above depends on them except the two error messages
# of ``_open`` and ``read_image``.

_FORMATS = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
_SIGNATURES = {
    "TIFF": (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"),
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
}


def describe_unreadable(path: str | os.PathLike, exc: BaseException) -> str:
    """What is wrong with a file a reader failed on, in words a person can act on (not the reader's
    exception): not the format its name says, a TIFF with no image in it, a file cut short, ..."""
    import logging

    path = Path(path)
    kind = _FORMATS.get(path.suffix.lower(), path.suffix.lstrip(".").upper() or "image")
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as err:
        return f"cannot be opened ({err.strerror or err})"
    signatures = _SIGNATURES.get(kind)
    if signatures and not head.startswith(signatures):
        return (f"not a {kind} file: it does not start like one (a file of another kind renamed to "
                f"{path.suffix}, or damaged)")
    text = str(exc).lower()
    if kind == "TIFF":
        import tifffile

        logger = logging.getLogger("tifffile")
        level = logger.level
        logger.setLevel(logging.CRITICAL)  # tifffile logs "contains no pages" for each attempt
        try:
            with tifffile.TiffFile(path) as tif:
                if len(tif.pages) == 0:
                    return "a damaged TIFF file: it has a TIFF header but no image in it"
                page = tif.pages[0]  # where its pixels should be, without reading them
                ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=False)]
                if ends and max(ends) > path.stat().st_size:
                    text += " truncated"
        except Exception as err:  # diagnosing a file that already failed: any error is a clue
            text += " " + str(err).lower()
        finally:
            logger.setLevel(level)
    if any(s in text for s in ("failed to read", "truncated", "unexpected end", "end of file", "eof")) \
            or isinstance(exc, EOFError):
        return "the file is cut short: it ends before its pixel data does (an incomplete copy or download?)"
    detail = " ".join(str(exc).split())[:120]
    return (f"a damaged or unsupported {kind} file: the reader could not make sense of it"
            + (f" ({detail})" if detail else ""))


def color_samples(path: str | os.PathLike) -> int:
    """Colour samples per pixel: 3 for an RGB file, 4 for RGBA, 1 otherwise. :func:`read_image` reads only
    the first sample of such a file; :func:`read_fitted` reads them all, as channels."""
    path = Path(path)
    if path.suffix.lower() == ".npy":
        return 1
    dims = _open(path).dims
    return int(getattr(dims, "S", 1)) if "S" in dims.order else 1


def read_fitted(path: str | os.PathLike, t: int = 0, channel: int | None = None,
                z_projection: str | None = None) -> np.ndarray:
    """One timepoint as ``(C, Z, Y, X)``, colour samples of an RGB file as channels; then only ``channel``
    (kept as a channel axis of 1) and, with ``z_projection="max"``, the maximum over Z (Z becomes 1)."""
    path = Path(path)
    if z_projection not in (None, "max"):
        raise ValueError(f"z_projection must be None or 'max', got {z_projection!r}")
    samples = color_samples(path)
    if samples > 1:
        info = image_info(path)
        if not 0 <= t < info.n_timepoints:
            raise ImageReadError(path, f"timepoint {t} out of range (image has {info.n_timepoints})")
        n = int(np.prod(info.shape[1:])) * samples
        if n > MAX_ELEMENTS:
            raise ImageReadError(path, f"one timepoint has {n:,} pixels, more than the limit of {MAX_ELEMENTS:,}")
        try:
            zyxs = _open(path).get_image_dask_data("ZYXS", T=t, C=0).compute()
        except Exception as exc:
            raise ImageReadError(path, describe_unreadable(path, exc)) from None
        data = np.moveaxis(np.asarray(zyxs), -1, 0)
        if channel is not None:
            data = data[[channel]]
    else:
        data = read_image(path, t, channels=None if channel is None else [channel]).data
    if channel is not None and data.shape[0] != 1:
        raise ImageReadError(path, f"channel {channel} could not be read on its own")
    if z_projection == "max":
        data = data.max(axis=1, keepdims=True)
    return np.ascontiguousarray(data)
