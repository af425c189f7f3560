"""Spectral response functions (SRF) of multispectral sensors.

A response is a CSV file: a header ``wavelength_nm,<band>,<band>,...`` and one row per
wavelength. Shipped responses live beside this module:

- ``nikon_d700.csv``: Nikon D700 R, G, B at 400:10:700 nm, the integer figures the CAVE fusion
  literature uses (rows sum to 255, 203 and 251).
- ``worldview3.csv``: an *approximation* of WorldView-3: a Gaussian per band whose full width at
  half maximum spans the published band edges (no measured curve is available offline). It is
  written by :func:`worldview3_gaussian_table`.

:func:`srf_matrix` resamples a response to the HSI band centres and normalises each band to sum 1,
which gives the matrix ``R`` of the observation model ``hr_msi = R @ X``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hsrdiff.errors import DataError

SHIPPED = {
    "nikon_d700": Path(__file__).parent / "nikon_d700.csv",
    "worldview3": Path(__file__).parent / "worldview3.csv",
}

# WorldView-3 VNIR bands: name, centre, lower edge, upper edge (nm), from the published figures.
WORLDVIEW3_BANDS = (
    ("coastal", 426.0, 397.0, 454.0),
    ("blue", 481.0, 445.0, 517.0),
    ("green", 547.0, 507.0, 586.0),
    ("yellow", 605.0, 580.0, 629.0),
    ("red", 661.0, 626.0, 696.0),
    ("red_edge", 724.0, 698.0, 749.0),
    ("nir1", 832.0, 765.0, 899.0),
    ("nir2", 948.0, 857.0, 1039.0),
)
FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))  # sigma = FWHM / 2.3548


@dataclass(frozen=True)
class SpectralResponse:
    """A tabulated response: ``response[i, j]`` of band ``names[j]`` at ``wavelengths[i]`` nm."""

    wavelengths: np.ndarray  # (n,)
    response: np.ndarray  # (n, bands)
    names: tuple[str, ...]
    source: str

    @property
    def centres(self) -> np.ndarray:
        """Response-weighted mean wavelength of each band, in nm."""
        weights = self.response / self.response.sum(axis=0, keepdims=True)
        return (self.wavelengths[:, None] * weights).sum(axis=0)


@dataclass(frozen=True)
class SRF:
    """The response resampled to an HSI: ``matrix`` (msi_bands, hsi_bands), rows summing to 1."""

    matrix: np.ndarray
    names: tuple[str, ...]
    source: str


def read_response(name_or_path: str | Path) -> SpectralResponse:
    """Read a shipped response by name (``nikon_d700``, ``worldview3``) or a CSV by path."""
    path = SHIPPED.get(str(name_or_path), Path(name_or_path))
    if not path.is_file():
        raise DataError(
            f"SRF '{name_or_path}': no such shipped response ({', '.join(SHIPPED)}) and no file at {path}"
        )
    with open(path) as fh:
        header = [h.strip() for h in fh.readline().lstrip("#").split(",")]
    try:
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    except ValueError as exc:
        raise DataError(f"SRF file {path}: expected numeric CSV rows after the header: {exc}") from exc
    if table.shape[1] < 2 or len(header) != table.shape[1]:
        raise DataError(
            f"SRF file {path}: expected a header 'wavelength_nm,<band>,...' and the same number of "
            f"columns in every row; header has {len(header)}, rows have {table.shape[1]}"
        )
    wavelengths, response = table[:, 0], table[:, 1:]
    if np.any(np.diff(wavelengths) <= 0):
        raise DataError(f"SRF file {path}: wavelengths (first column) must increase strictly")
    if np.any(response < 0) or np.any(response.sum(axis=0) <= 0):
        raise DataError(f"SRF file {path}: responses must be non-negative with a positive sum per band")
    return SpectralResponse(wavelengths, response, tuple(header[1:]), str(path))


def srf_matrix(response: SpectralResponse, hsi_wavelengths: np.ndarray) -> SRF:
    """Resample ``response`` to the HSI band centres (linear interpolation, zero outside).

    Bands whose centre lies outside the HSI's wavelength range are dropped: the HSI cannot
    simulate them. Each remaining row is normalised to sum 1.
    """
    hsi_wavelengths = np.asarray(hsi_wavelengths, dtype=np.float64)
    lo, hi = hsi_wavelengths.min(), hsi_wavelengths.max()
    rows, names = [], []
    for j, name in enumerate(response.names):
        if not lo <= response.centres[j] <= hi:
            continue
        row = np.interp(hsi_wavelengths, response.wavelengths, response.response[:, j], left=0.0, right=0.0)
        if row.sum() <= 0:
            raise DataError(
                f"SRF {response.source}: band '{name}' has no response at the HSI band centres "
                f"({lo:.0f}-{hi:.0f} nm)"
            )
        rows.append(row / row.sum())
        names.append(name)
    if not rows:
        raise DataError(
            f"SRF {response.source}: no band centre lies inside the HSI range {lo:.0f}-{hi:.0f} nm "
            f"(centres: {', '.join(f'{c:.0f}' for c in response.centres)})"
        )
    return SRF(np.stack(rows).astype(np.float32), tuple(names), response.source)


def worldview3_gaussian_table(start: float = 350.0, stop: float = 1100.0, step: float = 1.0) -> SpectralResponse:
    """The WorldView-3 approximation: unit-peak Gaussians with FWHM = upper - lower edge."""
    wavelengths = np.arange(start, stop + step / 2, step)
    response = np.stack(
        [np.exp(-0.5 * ((wavelengths - c) / ((hi - lo) * FWHM_TO_SIGMA)) ** 2) for _, c, lo, hi in WORLDVIEW3_BANDS],
        axis=1,
    )
    return SpectralResponse(wavelengths, response, tuple(b[0] for b in WORLDVIEW3_BANDS), "worldview3 (Gaussian approximation)")


def write_response(response: SpectralResponse, path: str | Path, precision: int = 6) -> None:
    header = ",".join(("wavelength_nm",) + response.names)
    table = np.column_stack([response.wavelengths, response.response])
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt=f"%.{precision}g")
