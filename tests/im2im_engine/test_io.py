"""Reading microscopy images into explicit (C, Z, Y, X) arrays, and writing OME-TIFF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from im2im_engine import io


def test_2d_tiff_png_jpeg_and_npy(tmp_path: Path) -> None:
    from skimage import io as skio

    img = (np.arange(40 * 30).reshape(40, 30) % 251).astype(np.uint8)
    tifffile.imwrite(tmp_path / "a.tif", img)
    skio.imsave(tmp_path / "b.png", img, check_contrast=False)
    skio.imsave(tmp_path / "c.jpg", img, check_contrast=False)
    np.save(tmp_path / "d.npy", img)
    for name in ("a.tif", "b.png", "d.npy"):
        data = io.read_image(tmp_path / name).data
        assert data.shape == (1, 1, 40, 30), name
        np.testing.assert_array_equal(np.asarray(data)[0, 0], img)
    jpg = io.read_image(tmp_path / "c.jpg").data
    assert jpg.shape[-2:] == (40, 30)
    assert [p.name for p in io.find_images(tmp_path)] == ["a.tif", "b.png", "c.jpg", "d.npy"]


def test_ome_tiff_multichannel_3d_timeseries_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.integers(0, 4000, (3, 2, 5, 32, 24), dtype=np.uint16)  # T C Z Y X
    path = tmp_path / "stack with space ü.ome.tif"
    io.write_ome_tiff(path, data, channel_names=["DAPI", "GFP"])
    info = io.image_info(path)
    assert info.shape == (3, 2, 5, 32, 24) and info.is_3d
    assert info.channel_names == ["DAPI", "GFP"] and all(type(c) is str for c in info.channel_names)
    second = io.read_image(path, t=1)
    np.testing.assert_array_equal(np.asarray(second.data), data[1])
    assert io.to_spatial(np.asarray(second.data), 3).shape == (2, 5, 32, 24)
    with pytest.raises(ValueError):
        io.to_spatial(np.asarray(second.data), 2)  # 5 planes cannot be a 2D image


@pytest.mark.parametrize(
    "content, problem",
    [(b"", "empty"), (b"II*\x00garbage" * 3, ""), (b"not an image at all", "")],
)
def test_unreadable_files_name_the_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "broken.tif"
    path.write_bytes(content)
    with pytest.raises(io.ImageReadError) as err:
        io.image_info(path)
    assert "broken.tif" in str(err.value) and problem in str(err.value)


def test_absurd_header_is_refused_without_allocating(tmp_path: Path) -> None:
    path = tmp_path / "huge.npy"
    with open(path, "wb") as fh:  # a .npy header claiming 10^12 pixels, no data
        np.lib.format.write_array_header_1_0(
            fh, {"descr": "<u2", "fortran_order": False, "shape": (1_000_000, 1_000_000)}
        )
    with pytest.raises(io.ImageReadError, match=r"huge\.npy: one timepoint has 1,000,000,000,000 pixels"):
        io.read_image(path)


def test_npy_over_the_size_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real, complete .npy array over a lowered limit: refused by the guard, not by a failing mmap."""
    path = tmp_path / "big.npy"
    np.save(path, np.ones((3, 40, 30), np.uint8))  # 3,600 elements
    assert io.read_image(path).data.shape == (1, 3, 40, 30)  # readable under the default limit
    monkeypatch.setattr(io, "MAX_ELEMENTS", 3_599)
    for read in (io.read_image, io.image_info, io.read_array):
        with pytest.raises(io.ImageReadError, match=r"big\.npy: one timepoint has 3,600 pixels.*limit of 3,599"):
            read(path)
    monkeypatch.setattr(io, "MAX_ELEMENTS", 3_600)  # exactly at the limit is allowed
    assert io.read_array(path).shape == (3, 40, 30)


def test_masks_are_checked(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "neg.tif", np.full((8, 8), -1, np.int16))
    tifffile.imwrite(tmp_path / "float.tif", np.full((8, 8), 0.5, np.float32))
    tifffile.imwrite(tmp_path / "ok.tif", np.arange(64, dtype=np.uint16).reshape(8, 8))
    with pytest.raises(io.ImageReadError, match="negative"):
        io.read_mask(tmp_path / "neg.tif")
    with pytest.raises(io.ImageReadError, match=r"float\.tif"):
        io.read_mask(tmp_path / "float.tif")
    with pytest.raises(io.ImageReadError, match="shape"):
        io.read_mask(tmp_path / "ok.tif", expected_spatial=(9, 8))
    assert io.read_mask(tmp_path / "ok.tif", expected_spatial=(8, 8)).max() == 63


def test_tiff_header_claiming_a_trillion_pixels_is_refused_without_allocating(tmp_path: Path) -> None:
    import resource
    import struct

    path = tmp_path / "liar.tif"
    tifffile.imwrite(path, np.zeros((1, 70000), np.uint8))  # wide enough that width is stored as LONG
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        offsets = [tags[name].valueoffset for name in ("ImageWidth", "ImageLength")]
        assert tags["ImageWidth"].dtype == 4  # LONG
    raw = bytearray(path.read_bytes())
    for offset in offsets:
        raw[offset:offset + 4] = struct.pack("<I", 1_000_000)
    path.write_bytes(bytes(raw))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(io.ImageReadError) as err:
        io.read_image(path)
    assert "liar.tif" in str(err.value)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before < 500_000  # KiB: no 1 TB buffer
