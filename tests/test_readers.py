"""Readers (round trips of every format) and the prepare stage, with its errors."""

import zipfile

import h5py
import imageio.v3 as iio
import numpy as np
import pytest
import scipy.io
import tifffile

from conftest import make_config
from hsrdiff.data.download import extract_zip
from hsrdiff.data.prepare import prepare_scene
from hsrdiff.data.readers import read_scene
from hsrdiff.data.registry import DatasetSpec
from hsrdiff.errors import ConfigError, DataError
from hsrdiff.io import read_arrays

BANDS, H, W = 5, 12, 8


@pytest.fixture
def cube_bhw():
    rng = np.random.default_rng(0)
    return (rng.random((BANDS, H, W)) * 1000).astype(np.uint16)


def _entry(path, reader, **kw):
    entry = {
        "source": {"path": str(path)},
        "reader": reader,
        "wavelengths": {"start": 400, "stop": 800, "count": BANDS},
        "ratio": 4,
        "srf": "worldview3",
        "scenes": {"test": ["all"]},
        "scale": 1000,
    }
    entry.update(kw)
    return entry


def _read(entry, scene="all"):
    spec = DatasetSpec.from_config(make_config({"d": entry}), "d")
    return read_scene(spec.name, spec.scene(scene), spec.reader_settings(), spec.raw_location())


def write_mat73(path, name, array_matlab_order):
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with a 512-byte header, axes reversed."""
    with h5py.File(path, "w", userblock_size=512) as fh:
        fh.create_dataset(name, data=np.ascontiguousarray(np.transpose(array_matlab_order)))
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02" + b"IM")


def test_mat_v5_round_trip_hwb(tmp_path, cube_bhw):
    path = tmp_path / "scene.mat"
    scipy.io.savemat(path, {"cube": np.transpose(cube_bhw, (1, 2, 0))})
    raw = _read(_entry(path, "mat", variable="cube", axis_order="hwb"))
    np.testing.assert_array_equal(raw.cube, cube_bhw)
    np.testing.assert_allclose(raw.wavelengths, np.linspace(400, 800, BANDS))


def test_mat_v73_round_trip_with_region(tmp_path, cube_bhw):
    path = tmp_path / "scene73.mat"
    write_mat73(path, "cube", np.transpose(cube_bhw, (1, 2, 0)))
    with pytest.raises(NotImplementedError):
        scipy.io.loadmat(path)  # really v7.3: scipy refuses it
    entry = _entry(path, "mat", variable="cube", axis_order="hwb",
                   scenes={"train": [{"name": "top", "region": [0, 4, 0, 8]}], "test": [{"name": "bottom", "region": [4, 12, 2, 6]}]})
    np.testing.assert_array_equal(_read(entry, "bottom").cube, cube_bhw[:, 4:12, 2:6])
    np.testing.assert_array_equal(_read(entry, "top").cube, cube_bhw[:, 0:4, :])


def test_hdf5_tiff_npy_round_trips(tmp_path, cube_bhw):
    h5 = tmp_path / "scene.h5"
    with h5py.File(h5, "w") as fh:
        fh["data/cube"] = np.transpose(cube_bhw, (2, 1, 0))  # (w, h, b)
        fh["wl"] = np.linspace(500, 900, BANDS)
    raw = _read(_entry(h5, "hdf5", variable="data/cube", axis_order="whb", wavelengths={"variable": "wl"}))
    np.testing.assert_array_equal(raw.cube, cube_bhw)
    np.testing.assert_allclose(raw.wavelengths, np.linspace(500, 900, BANDS))

    tif = tmp_path / "scene.tif"
    tifffile.imwrite(tif, cube_bhw)
    np.testing.assert_array_equal(_read(_entry(tif, "tiff", axis_order="bhw")).cube, cube_bhw)

    npy = tmp_path / "scene.npy"
    np.save(npy, np.transpose(cube_bhw, (1, 0, 2)))  # (h, b, w)
    np.testing.assert_array_equal(_read(_entry(npy, "npy", axis_order="hbw")).cube, cube_bhw)


def test_bands_by_pixels_matrix_unfolds_column_major(tmp_path, cube_bhw):
    # MATLAB's reshape(Y, bands, h*w): pixel index = row + h * col
    matrix = cube_bhw.reshape(BANDS, H * W, order="F")
    path = tmp_path / "matrix.mat"
    scipy.io.savemat(path, {"Y": matrix, "Sel": np.arange(3, 3 + BANDS)[:, None]})
    entry = _entry(path, "mat", variable="Y", axis_order="bp", pixels={"height": H, "width": W},
                   wavelengths={"start": 400, "stop": 490, "count": 10, "select": {"variable": "Sel", "index_base": 1}})
    raw = _read(entry)
    np.testing.assert_array_equal(raw.cube, cube_bhw)
    np.testing.assert_allclose(raw.wavelengths, np.linspace(400, 490, 10)[2 : 2 + BANDS])


def test_centre_crop_then_region_and_band_selection(tmp_path, cube_bhw):
    path = tmp_path / "c.npy"
    np.save(path, cube_bhw)
    entry = _entry(path, "npy", axis_order="bhw", crop={"center": [8, 4]}, bands=[0, 2, 4],
                   scenes={"test": [{"name": "s", "region": [2, 6, 0, 4]}]})
    raw = _read(entry, "s")
    np.testing.assert_array_equal(raw.cube, cube_bhw[[0, 2, 4], 2 + 2 : 2 + 6, 2 : 6])
    np.testing.assert_allclose(raw.wavelengths, np.linspace(400, 800, BANDS)[[0, 2, 4]])


def test_cave_png_layout_from_a_zip_archive(tmp_path):
    rng = np.random.default_rng(3)
    cube = (rng.random((4, 16, 16)) * 65535).astype(np.uint16)
    archive = tmp_path / "complete_ms_data.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for b in range(4):
            # bands out of order in the archive; the reader sorts by the band number
            zf.writestr(f"balloons_ms/balloons_ms/balloons_ms_{4 - b:02d}.png", iio.imwrite("<bytes>", cube[3 - b], extension=".png"))
        zf.writestr("balloons_ms/balloons_ms/balloons_RGB.bmp", b"not a band")
    root = extract_zip(archive, tmp_path / "raw")
    entry = _entry(root, "cave_png", wavelengths={"start": 400, "stop": 430, "count": 4}, scale="dtype",
                   scenes={"train": ["balloons"]})
    spec = DatasetSpec.from_config(make_config({"cave": entry}), "cave")
    raw = read_scene(spec.name, spec.scene("balloons"), spec.reader_settings(), spec.raw_location())
    np.testing.assert_array_equal(raw.cube, cube)
    out = tmp_path / "balloons.h5"
    prepare_scene(spec.name, spec.scene("balloons"), spec.reader_settings(), spec.raw_location(), out)
    hsi = read_arrays(out, "hsi")["hsi"]
    np.testing.assert_allclose(hsi, cube / 65535.0, atol=1e-6)


def test_prepare_writes_float32_in_unit_range_and_counts_clipping(tmp_path, caplog):
    data = np.linspace(-0.2, 1.3, BANDS * H * W).reshape(BANDS, H, W)
    path = tmp_path / "f.npy"
    np.save(path, data)
    spec = DatasetSpec.from_config(make_config({"d": _entry(path, "npy", axis_order="bhw", scale=1.0)}), "d")
    out = tmp_path / "out.h5"
    summary = prepare_scene(spec.name, spec.scene("all"), spec.reader_settings(), spec.raw_location(), out)
    with h5py.File(out) as fh:
        hsi = fh["hsi"][()]
        assert hsi.dtype == np.float32 and hsi.shape == (BANDS, H, W)
        assert fh.attrs["clipped_negative"] == (data < 0).sum() == summary["clipped_negative"]
        assert fh.attrs["clipped_above_one"] == (data > 1).sum()
        np.testing.assert_allclose(fh["wavelengths"][()], np.linspace(400, 800, BANDS))
    assert hsi.min() == 0 and hsi.max() == 1
    assert "clipped negative" in caplog.text


def test_scale_max_is_shared_by_regions_of_one_image(tmp_path):
    data = np.ones((BANDS, H, W))
    data[:, 0, 0] = 4.0  # the maximum lies in the training region only
    path = tmp_path / "m.npy"
    np.save(path, data)
    entry = _entry(path, "npy", axis_order="bhw", scale="max",
                   scenes={"train": [{"name": "a", "region": [0, 6, 0, 8]}], "test": [{"name": "b", "region": [6, 12, 0, 8]}]})
    spec = DatasetSpec.from_config(make_config({"d": entry}), "d")
    prepare_scene(spec.name, spec.scene("b"), spec.reader_settings(), spec.raw_location(), tmp_path / "b.h5")
    np.testing.assert_allclose(read_arrays(tmp_path / "b.h5", "hsi")["hsi"], 0.25)


# -- errors a user meets -------------------------------------------------------------------------------
def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(DataError, match="raw data not found at .*nowhere"):
        _read(_entry(tmp_path / "nowhere", "mat", variable="x"))


def test_wrong_variable_lists_the_variables_of_the_file(tmp_path, cube_bhw):
    path = tmp_path / "scene.mat"
    scipy.io.savemat(path, {"cube": cube_bhw, "other": 1})
    with pytest.raises(DataError, match=r"scene.mat: no variable 'cub'; the file has: .*cube"):
        _read(_entry(path, "mat", variable="cub"))
    path73 = tmp_path / "scene73.mat"
    write_mat73(path73, "cube", cube_bhw)
    with pytest.raises(DataError, match=r"scene73.mat: no dataset 'cub'; the file has: cube"):
        _read(_entry(path73, "mat", variable="cub"))


def test_nan_is_an_error_naming_file_and_bands(tmp_path):
    data = np.ones((BANDS, H, W))
    data[3, 2, 2] = np.nan
    path = tmp_path / "nan.npy"
    np.save(path, data)
    spec = DatasetSpec.from_config(make_config({"d": _entry(path, "npy", axis_order="bhw", scale=1.0)}), "d")
    out = tmp_path / "out.h5"
    with pytest.raises(DataError, match=r"nan.npy: 1 NaN/Inf values in bands \[3\]"):
        prepare_scene(spec.name, spec.scene("all"), spec.reader_settings(), spec.raw_location(), out)
    assert not out.exists() and not list(tmp_path.glob("*.part"))


def test_band_count_mismatch_is_an_error(tmp_path, cube_bhw):
    path = tmp_path / "c.npy"
    np.save(path, cube_bhw)
    with pytest.raises(DataError, match="the cube has 5 bands but the config 'wavelengths' gives 7"):
        _read(_entry(path, "npy", axis_order="bhw", wavelengths={"start": 400, "stop": 700, "count": 7}))


def test_scale_dtype_on_float_data_is_an_error(tmp_path):
    path = tmp_path / "f.npy"
    np.save(path, np.ones((BANDS, H, W)))
    spec = DatasetSpec.from_config(make_config({"d": _entry(path, "npy", axis_order="bhw", scale="dtype")}), "d")
    with pytest.raises(ConfigError, match="scale 'dtype' needs integer data but the cube is float64"):
        prepare_scene(spec.name, spec.scene("all"), spec.reader_settings(), spec.raw_location(), tmp_path / "o.h5")


def test_region_outside_the_image_is_an_error(tmp_path, cube_bhw):
    path = tmp_path / "c.npy"
    np.save(path, cube_bhw)
    with pytest.raises(DataError, match=r"region \[0, 20, 0, 4\] of scene 's' exceeds the image of size 12x8"):
        _read(_entry(path, "npy", axis_order="bhw", scenes={"test": [{"name": "s", "region": [0, 20, 0, 4]}]}), "s")
