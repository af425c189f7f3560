"""Quality against cost of the samplers: ``hsrdiff bench-sampling``.

For a trained weights file and degraded test scenes (with ground truth), each sampler at each
step count (and number of averaged samples, and views of the inputs they cycle through) fuses
every scene; a row gives the mean PSNR and SAM, the network evaluations (NFE = steps x samples)
and the seconds per scene, and, with two samples or more, the Spearman rank correlation between
the uncertainty map (per-pixel standard deviation of the samples, averaged over bands) and the
absolute error of their mean (likewise averaged): whether the map points at the errors (the
mean over the scenes, and the lowest scene's). The paper's sampler (ancestral, 100 linear-beta
steps) is measured as the reference unless left out; a regression twin's weights give a
reference line.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hsrdiff.files import read_observations
from hsrdiff.io import atomic_path
from hsrdiff.metrics import psnr, sam
from hsrdiff.sampling import Fuser, build_sampler

PAPER = {"sampler": "ancestral", "spacing": "linear", "steps": 100}


@dataclass
class SamplingRow:
    sampler: str
    spacing: str
    steps: int
    n_samples: int
    views: int
    nfe: int
    psnr: float
    sam: float
    seconds_per_scene: float
    uncertainty_rank_corr: float | None
    uncertainty_rank_corr_min: float | None = None  # the lowest scene's


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two arrays of the same size (ties are rare in float maps; ranked by order)."""
    ra = np.empty(a.size)
    rb = np.empty(b.size)
    ra[np.argsort(a.ravel(), kind="stable")] = np.arange(a.size)
    rb[np.argsort(b.ravel(), kind="stable")] = np.arange(b.size)
    return float(np.corrcoef(ra, rb)[0, 1])


def _score(fuser: Fuser, scenes) -> tuple[float, float, float, list[float]]:
    psnrs, sams, secs, corrs = [], [], [], []
    for obs in scenes:
        result = fuser(obs.lr_hsi, obs.hr_msi)
        psnrs.append(psnr(result.fused, obs.gt))
        sams.append(sam(result.fused, obs.gt))
        secs.append(result.seconds)
        if result.std is not None:
            corrs.append(rank_correlation(result.std.mean(axis=0), np.abs(result.fused - obs.gt).mean(axis=0)))
    return float(np.mean(psnrs)), float(np.mean(sams)), float(np.mean(secs)), corrs


def run(weights: str | Path, observation_files: Sequence[str | Path], schedule_cfg: Mapping[str, Any],
        sampling_cfg: Mapping[str, Any], samplers: Sequence[str], steps: Sequence[int], spacing: str,
        n_samples: Sequence[int] = (1,), regression_weights: str | Path | None = None,
        views: Sequence[int] = (1,), paper_reference: bool = True) -> tuple[list[SamplingRow], dict | None]:
    """All rows (the paper's reference first unless ``paper_reference`` is False) and the
    regression twin's scores (or None)."""
    scenes = [read_observations(p) for p in observation_files]
    for obs in scenes:
        obs.need("gt")
    fuser = Fuser(weights, schedule_cfg, sampling_cfg)
    train_schedule = (fuser.blob.get("diffusion") or {}).get("train_schedule")
    settings = [(PAPER["sampler"], PAPER["spacing"], PAPER["steps"], 1, 1)]
    # One sample sees one view whatever the number of views: those rows would repeat the first.
    settings += [(name, spacing, k, n, v) for v in views for n in n_samples for name in samplers for k in steps
                 if (name, spacing, k, n, v) != settings[0] and (n > 1 or v == min(views))]
    if not paper_reference:
        settings = settings[1:]
    rows = []
    for name, spc, k, n, v in settings:
        schedule = {**schedule_cfg, "spacing": spc}
        if spc == "linear":
            schedule["steps"] = k
        fuser.sampler = build_sampler(schedule, sampling_cfg, train_schedule, sampler=name, steps=k)
        fuser.sampling["n_samples"] = n
        fuser.sampling["views"] = v
        p, s, sec, corrs = _score(fuser, scenes)
        corr, low = (float(np.mean(corrs)), float(np.min(corrs))) if corrs else (None, None)
        rows.append(SamplingRow(name, spc, k, n, v, k * n, p, s, sec, corr, low))
        print(f"  {name:13s} {spc:8s} steps {k:4d} x{n} views {v}: PSNR {p:.3f} dB, SAM {s:.3f}, {sec:.2f} s/scene"
              + (f", uncertainty rank corr {corr:.3f} (per scene: {' '.join(f'{c:.3f}' for c in corrs)})" if corrs else ""),
              flush=True)
    reference = None
    if regression_weights is not None:
        twin = Fuser(regression_weights, schedule_cfg, sampling_cfg)
        p, s, sec, _ = _score(twin, scenes)
        reference = {"psnr": p, "sam": s, "seconds_per_scene": sec}
    return rows, reference


def markdown(rows: Sequence[SamplingRow], reference: dict | None) -> str:
    lines = ["| sampler | spacing | steps | samples | views | NFE | PSNR (dB) | SAM (°) | s / scene | uncertainty rank corr (lowest scene) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        corr = "" if r.uncertainty_rank_corr is None else f"{r.uncertainty_rank_corr:.3f} ({r.uncertainty_rank_corr_min:.3f})"
        lines.append(f"| {r.sampler} | {r.spacing} | {r.steps} | {r.n_samples} | {r.views} | {r.nfe} | {r.psnr:.3f} | {r.sam:.3f} | "
                     f"{r.seconds_per_scene:.2f} | {corr} |")
    if reference is not None:
        lines.append(f"| regression twin | | | | | 1 | {reference['psnr']:.3f} | {reference['sam']:.3f} | "
                     f"{reference['seconds_per_scene']:.2f} | |")
    return "\n".join(lines)


def write_csv(rows: Sequence[SamplingRow], reference: dict | None, path: str | Path) -> None:
    fields = list(SamplingRow.__dataclass_fields__)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(asdict(r))
        if reference is not None:
            writer.writerow({"sampler": "regression", "spacing": "", "steps": 0, "n_samples": 1, "views": 1, "nfe": 1,
                             "psnr": reference["psnr"], "sam": reference["sam"],
                             "seconds_per_scene": reference["seconds_per_scene"], "uncertainty_rank_corr": None})


def plot(rows: Sequence[SamplingRow], reference: dict | None, path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    def is_paper(r: SamplingRow) -> bool:
        return (r.sampler, r.spacing, r.steps, r.n_samples) == (PAPER["sampler"], PAPER["spacing"], PAPER["steps"], 1)

    groups: dict[tuple[str, str, int, int], list[SamplingRow]] = {}
    for r in (r for r in rows if not is_paper(r)):
        groups.setdefault((r.sampler, r.spacing, r.n_samples, r.views), []).append(r)
    for (name, spc, n, v), rs in groups.items():
        rs = sorted(rs, key=lambda r: r.nfe)
        label = f"{name} ({spc}" + (f", {n} samples" if n > 1 else "") + (f", {v} views" if n > 1 and v > 1 else "") + ")"
        ax.plot([r.nfe for r in rs], [r.psnr for r in rs], marker="o", label=label)
    for ref in filter(is_paper, rows):
        ax.scatter([ref.nfe], [ref.psnr], marker="*", s=150, color="k", zorder=5, label="paper: ancestral, 100 linear")
    if reference is not None:
        ax.axhline(reference["psnr"], color="grey", linestyle="--", label="regression twin")
    ax.set_xscale("log")
    ax.set_xlabel("network evaluations per scene")
    ax.set_ylabel("mean PSNR (dB)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(weights, observation_files, schedule_cfg, sampling_cfg, samplers, steps, spacing, n_samples,
         regression_weights, out_csv, out_plot, views=(1,), paper_reference=True) -> list[SamplingRow]:
    t0 = time.perf_counter()
    rows, reference = run(weights, observation_files, schedule_cfg, sampling_cfg, samplers, steps, spacing,
                          n_samples, regression_weights, views, paper_reference)
    print(markdown(rows, reference))
    print(f"\n{len(observation_files)} scenes, {time.perf_counter() - t0:.0f} s wall")
    if out_csv:
        write_csv(rows, reference, out_csv)
    if out_plot:
        plot(rows, reference, out_plot, title=Path(weights).parent.name)
    return rows
