"""Evaluation: metrics per scene, and the per-dataset tables.

``metrics.csv`` has one row per (dataset, method, scene); the summary follows the layout of the
paper's Table 1 (methods as rows; PSNR, SSIM, SAM, ERGAS averaged over test scenes), with the
paper's published rows alongside for the paper's datasets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from hsrdiff.errors import ConfigError, DataError
from hsrdiff.files import read_fused, read_ground_truth, read_observations
from hsrdiff.io import atomic_path
from hsrdiff.metrics import all_metrics

# The published paper's rows (PSNR, SSIM, SAM, ERGAS): Table 1 (HSR-Diff, the best prior method
# and Fusformer) and Table 2 (the same CDFormer trained by regression, without diffusion), placed
# under ours in each summary table.
PAPER_TABLE1 = {
    "cave": {"HSR-Diff (paper)": (44.33, 0.9951, 3.71, 0.179),
             "regression, same CDFormer (paper, Table 2)": (43.26, 0.9942, 4.03, 0.193),
             "best prior, UAL-DMI/CMHF-Net (paper)": (42.74, 0.9950, 3.79, 0.213),
             "Fusformer (paper)": (41.52, 0.9934, 4.71, 0.243)},
    "paviau": {"HSR-Diff (paper)": (46.47, 0.9977, 1.45, 1.053),
               "regression, same CDFormer (paper, Table 2)": (46.03, 0.9968, 1.52, 1.178),
               "best prior, UAL-DMI/CMHF-Net (paper)": (45.77, 0.9965, 1.50, 1.096),
               "Fusformer (paper)": (45.66, 0.9965, 1.52, 1.109)},
    "chikusei": {"HSR-Diff (paper)": (57.34, 0.9999, 0.43, 0.324),
                 "regression, same CDFormer (paper, Table 2)": (56.71, 0.9999, 0.47, 0.372),
                 "best prior, UAL-DMI/CMHF-Net (paper)": (56.57, 0.9998, 0.47, 0.387),
                 "Fusformer (paper)": (55.92, 0.9998, 0.52, 0.492)},
}
METRICS = ("psnr", "ssim", "sam", "ergas", "rmse")


def evaluate_scene(fused_path: str | Path, degraded_path: str | Path, dataset: str, method: str, scene: str) -> dict[str, Any]:
    """Metrics of one fused scene against the ground truth of its degraded file."""
    result = read_fused(fused_path).result
    fused, seconds = result.fused, result.seconds
    gt, ratio, _ = read_ground_truth(degraded_path)
    if fused.shape != gt.shape:
        raise DataError(f"{fused_path}: fused shape {fused.shape} differs from the ground truth {gt.shape} of {degraded_path}")
    return {"dataset": dataset, "method": method, "scene": scene, **all_metrics(fused, gt, ratio), "seconds": seconds}


def write_table(rows: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    with atomic_path(path) as tmp:
        pd.DataFrame(list(rows)).to_csv(tmp, index=False)


def summarise(metrics_csv: str | Path, summary_csv: str | Path, summary_md: str | Path, method_order: Sequence[str] = (),
              split: str = "test") -> pd.DataFrame:
    """Mean metrics per method (rows) for one dataset, with the paper's rows when it has them.

    ``split`` "validation": the rows are of training scenes held out of the patches; the paper's
    test-set rows are left out, which would not compare like with like."""
    df = pd.read_csv(metrics_csv)
    dataset = str(df["dataset"].iloc[0])
    table = df.groupby("method")[list(METRICS) + ["seconds"]].mean()
    table["scenes"] = df.groupby("method")["scene"].count()
    order = [m for m in method_order if m in table.index] + [m for m in table.index if m not in method_order]
    table = table.loc[order]
    for name, (p, s, a, e) in (PAPER_TABLE1.get(dataset, {}) if split == "test" else {}).items():
        table.loc[name] = {"psnr": p, "ssim": s, "sam": a, "ergas": e, "rmse": np.nan, "seconds": np.nan, "scenes": np.nan}
    table.index.name = "method"
    with atomic_path(summary_csv) as tmp:
        table.to_csv(tmp)
    what = ("test scenes" if split == "test" else
            "validation scenes, training scenes held out of the patches to choose settings on,")
    lines = [f"Dataset `{dataset}`: mean over {int(df['scene'].nunique())} {what} "
             "(PSNR and SSIM: higher is better; SAM in degrees and ERGAS: lower is better).", "",
             "| method | PSNR (dB) | SSIM | SAM (°) | ERGAS | RMSE | s / scene |", "|---|---|---|---|---|---|---|"]
    for method, row in table.iterrows():
        cells = [f"{row.psnr:.2f}", f"{row.ssim:.4f}", f"{row.sam:.2f}", f"{row.ergas:.3f}",
                 "" if np.isnan(row.rmse) else f"{row.rmse:.4f}", "" if np.isnan(row.seconds) else f"{row.seconds:.1f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    with atomic_path(summary_md) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return table


def score_bases(degraded_paths: Sequence[str | Path], bases: Sequence[str] = ("glp-hs+p20", "cnmf+p20"),
                weights: Sequence[float] = (0.25, 0.5, 0.75)) -> list[dict[str, Any]]:
    """The metrics of network bases (``model.base`` names, ``+p<N>`` projected) on scenes with a
    ground truth, and, for two bases, of their mixes ``(1 - w) first + w second``: which base a
    network should start from, measured without training one. One row per (scene, image); a mix
    of a mean base's parts, equally projected, is named as that base (``glp-hs+cnmf@0.75+p20``:
    what ``model.base``, ``base_weight`` and ``base_consistency`` give), any other ``mix w=<w>``."""
    import torch

    from hsrdiff.bases import MEAN_BASES, base_name, parse_base_name
    from hsrdiff.baselines import fusion_base

    bases = list(bases)
    if weights and len(bases) != 2:
        raise ConfigError(f"--weights mixes exactly two bases, got {len(bases)}: {', '.join(bases)} (pass --weights with no value for none)")
    try:
        specs = [parse_base_name(name) for name in bases]
    except ValueError as err:
        raise ConfigError(str(err)) from None
    mean = next((kind for kind, parts in MEAN_BASES.items() if len(specs) == 2
                 and parts == (specs[0].kind, specs[1].kind) and specs[0].consistency == specs[1].consistency), None)

    # Each fusion and each projection of it once, however many bases mix it (CNMF and the
    # projections take most of the time): fusion_base takes them as known.
    projected_parts = sorted({(part, spec.consistency) for spec in specs for part in MEAN_BASES.get(spec.kind, (spec.kind,))})

    def mix_name(w: float) -> str:
        return base_name(mean, specs[0].consistency, w) if mean and 0 <= w <= 1 else f"mix w={w:g}"

    rows = []
    for path in degraded_paths:
        obs = read_observations(path)
        gt = obs.need("gt")
        lr_hsi, hr_msi = torch.from_numpy(obs.lr_hsi)[None], torch.from_numpy(obs.hr_msi)[None]
        try:
            known = {kind: fusion_base(kind, lr_hsi, hr_msi, obs.psf, obs.srf) for kind in {k for k, _ in projected_parts}}
            known.update({base_name(kind, n): fusion_base(base_name(kind, n), lr_hsi, hr_msi, obs.psf, obs.srf, known)
                          for kind, n in projected_parts if n})
            images = {name: fusion_base(name, lr_hsi, hr_msi, obs.psf, obs.srf, known)[0].numpy() for name in bases}
        except ValueError as err:
            raise DataError(f"{path}: {err}") from None
        for w in weights:
            images[mix_name(w)] = (1 - w) * images[bases[0]] + w * images[bases[1]]
        for name, image in images.items():
            rows.append({"scene": str(obs.attrs.get("scene", Path(path).stem)), "image": name,
                         **all_metrics(image, gt, obs.ratio)})
    return rows
