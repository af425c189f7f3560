"""Quality against cost of the samplers: ``hsrdiff bench-sampling``.

For a trained weights file and degraded test scenes (with ground truth), each sampler at each
step count (and number of averaged samples, and views of the inputs they cycle through) fuses
every scene; a row gives the mean PSNR and SAM, the network evaluations (NFE = steps x samples)
and the seconds per scene, and, with two samples or more, the Spearman rank correlation between
the uncertainty map (per-pixel standard deviation of the samples, averaged over bands) and the
absolute error of their mean (likewise averaged): whether the map points at the errors (the
mean over the scenes, and the lowest scene's), and the PSNR that the mean of infinitely many such
samples would reach (:func:`limit_mean_psnr`): whether more samples could catch up with the
regression twin, which regresses to that mean directly. The paper's sampler (ancestral, 100
linear-beta steps) is measured as the reference unless left out; a regression twin's weights and classical
methods give reference lines. Each row set is measured at each ``consistency`` (iterations of the
projection onto the observations, 0: none), and so are the reference lines: the projection is
not the network's, and a classical method projected the same way says what the network adds.
"""

from __future__ import annotations

import csv
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from hsrdiff.baselines import classical
from hsrdiff.degradation import project_onto_observations
from hsrdiff.errors import DataError
from hsrdiff.files import read_observations
from hsrdiff.io import atomic_path
from hsrdiff.methods import BASELINES
from hsrdiff.metrics import psnr, sam
from hsrdiff.sampling import Fuser, build_sampler, regression_passes

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
    consistency: int = 0  # iterations of the projection onto the observations
    psnr_limit: float | None = None  # of the mean of infinitely many samples (estimated)


@dataclass
class ReferenceRow:
    method: str  # "regression" (the twin) or a classical baseline
    consistency: int
    psnr: float
    sam: float
    seconds_per_scene: float
    nfe: int = 0  # network evaluations per scene: the twin's passes (several when self-conditioned)


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two arrays of the same size (ties are rare in float maps; ranked by order)."""
    ra = np.empty(a.size)
    rb = np.empty(b.size)
    ra[np.argsort(a.ravel(), kind="stable")] = np.arange(a.size)
    rb[np.argsort(b.ravel(), kind="stable")] = np.arange(b.size)
    return float(np.corrcoef(ra, rb)[0, 1])


def limit_mean_psnr(mean: np.ndarray, std: np.ndarray, n_samples: int, reference: np.ndarray) -> float:
    """PSNR (mean over bands, as :func:`hsrdiff.metrics.psnr`) of the mean of infinitely many
    samples, estimated from ``n_samples`` of them: the squared error of an n-sample mean is the
    limit's plus the samples' variance / n, and std**2 n / (n - 1) (``std`` without Bessel's
    correction, per pixel) estimates that variance without bias."""
    if n_samples < 2:
        raise ValueError("the limit of the samples' mean needs two samples or more")
    mse = ((mean - reference) ** 2).mean(axis=(1, 2)) - (std**2).mean(axis=(1, 2)) / (n_samples - 1)
    return float(np.mean(10 * np.log10(1.0 / np.clip(mse, 1e-20, None))))


def _operators(obs):
    return None if obs.psf is None else (obs.psf, obs.srf)


def _score(fuser: Fuser, scenes) -> tuple[float, float, float, list[float], float | None]:
    psnrs, sams, secs, corrs, limits = [], [], [], [], []
    for obs in scenes:
        result = fuser(obs.lr_hsi, obs.hr_msi, _operators(obs))
        psnrs.append(psnr(result.fused, obs.gt))
        sams.append(sam(result.fused, obs.gt))
        secs.append(result.seconds)
        if result.std is not None:
            corrs.append(rank_correlation(result.std.mean(axis=0), np.abs(result.fused - obs.gt).mean(axis=0)))
            limits.append(limit_mean_psnr(result.fused, result.std, int(fuser.sampling["n_samples"]), obs.gt))
    limit = float(np.mean(limits)) if limits else None
    return float(np.mean(psnrs)), float(np.mean(sams)), float(np.mean(secs)), corrs, limit


def _score_classical(method: str, scenes, consistency: Sequence[int], classical_settings) -> list[ReferenceRow]:
    """A classical method's scores as published and projected like the network's samples: one
    fusion per scene, each projection from it."""
    scores: dict[int, list[tuple[float, float, float]]] = {c: [] for c in consistency}
    for obs in scenes:
        t0 = time.perf_counter()
        fused = classical(method, obs.lr_hsi, obs.hr_msi, obs.need("psf"), obs.need("srf"), classical_settings).fused
        seconds = time.perf_counter() - t0
        for c in consistency:
            t1 = time.perf_counter()
            out = fused if c == 0 else np.clip(project_onto_observations(fused, obs.lr_hsi, obs.hr_msi, obs.psf, obs.srf, c), 0, 1)
            scores[c].append((psnr(out, obs.gt), sam(out, obs.gt), seconds + time.perf_counter() - t1))
    return [ReferenceRow(method, c, *map(float, np.mean(v, axis=0))) for c, v in scores.items()]


def run(weights: str | Path, observation_files: Sequence[str | Path], schedule_cfg: Mapping[str, Any],
        sampling_cfg: Mapping[str, Any], samplers: Sequence[str], steps: Sequence[int], spacing: str,
        n_samples: Sequence[int] = (1,), regression_weights: str | Path | None = None,
        views: Sequence[int] = (1,), paper_reference: bool = True, consistency: Sequence[int] | None = None,
        classical: Sequence[str] = (), classical_settings: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[list[SamplingRow], list[ReferenceRow]]:
    """All rows (the paper's reference first unless ``paper_reference`` is False) and the
    reference lines (the regression twin's, then each classical method's, with
    ``classical_settings`` by method name: ``evaluation.cnmf``, ``evaluation.hysure``), each at
    every ``consistency`` (default: the configuration's)."""
    unknown = [m for m in classical if m not in BASELINES]
    if unknown:
        raise DataError(f"--classical {' '.join(unknown)}: not a classical method; expected some of {', '.join(BASELINES)}")
    scenes = [read_observations(p) for p in observation_files]
    for obs in scenes:
        obs.need("gt")
    if consistency is None:
        consistency = [int(sampling_cfg.get("consistency") or 0)]
    if any(consistency):  # the projection needs every scene's operators: refuse before any fusion
        for obs in scenes:
            obs.need("psf")
            obs.need("srf")
    fuser = Fuser(weights, schedule_cfg, sampling_cfg)
    train_schedule = (fuser.blob.get("diffusion") or {}).get("train_schedule")
    settings = [(PAPER["sampler"], PAPER["spacing"], PAPER["steps"], 1, 1, c) for c in consistency]
    # One sample sees one view whatever the number of views: those rows would repeat the first.
    settings += [(name, spacing, k, n, v, c) for c in consistency for v in views for n in n_samples for name in samplers
                 for k in steps if (name, spacing, k, n, v, c) not in settings and (n > 1 or v == min(views))]
    if not paper_reference:
        settings = [t for t in settings if t[:4] != (PAPER["sampler"], PAPER["spacing"], PAPER["steps"], 1)]
    rows = []
    for name, spc, k, n, v, c in settings:
        schedule = {**schedule_cfg, "spacing": spc}
        if spc == "linear":
            schedule["steps"] = k
        fuser.sampler = build_sampler(schedule, sampling_cfg, train_schedule, sampler=name, steps=k)
        fuser.sampling.update(n_samples=n, views=v, consistency=c)
        p, s, sec, corrs, limit = _score(fuser, scenes)
        corr, low = (float(np.mean(corrs)), float(np.min(corrs))) if corrs else (None, None)
        rows.append(SamplingRow(name, spc, k, n, v, k * n, p, s, sec, corr, low, c, limit))
        print(f"  {name:13s} {spc:8s} steps {k:4d} x{n} views {v} consistency {c}: PSNR {p:.3f} dB, SAM {s:.3f}, {sec:.2f} s/scene"
              + (f", uncertainty rank corr {corr:.3f} (per scene: {' '.join(f'{c:.3f}' for c in corrs)})" if corrs else "")
              + (f", limit of the mean {limit:.3f} dB" if limit is not None else ""),
              flush=True)
    references = []
    if regression_weights is not None:
        twin = Fuser(regression_weights, schedule_cfg, sampling_cfg)
        for c in consistency:
            twin.sampling["consistency"] = c
            p, s, sec, _, _ = _score(twin, scenes)
            references.append(ReferenceRow("regression", c, p, s, sec, regression_passes(twin.model, twin.sampler)))
    for method in classical:
        references += _score_classical(method, scenes, consistency, classical_settings)
    for r in references:
        print(f"  {r.method:13s} consistency {r.consistency}: PSNR {r.psnr:.3f} dB, SAM {r.sam:.3f}", flush=True)
    return rows, references


def markdown(rows: Sequence[SamplingRow], references: Sequence[ReferenceRow]) -> str:
    lines = ["| sampler | spacing | steps | samples | views | consistency | NFE | PSNR (dB) | SAM (°) | s / scene | "
             "uncertainty rank corr (lowest scene) | PSNR of the mean of infinitely many samples (dB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        corr = "" if r.uncertainty_rank_corr is None else f"{r.uncertainty_rank_corr:.3f} ({r.uncertainty_rank_corr_min:.3f})"
        limit = "" if r.psnr_limit is None else f"{r.psnr_limit:.3f}"
        lines.append(f"| {r.sampler} | {r.spacing} | {r.steps} | {r.n_samples} | {r.views} | {r.consistency} | {r.nfe} | {r.psnr:.3f} | "
                     f"{r.sam:.3f} | {r.seconds_per_scene:.2f} | {corr} | {limit} |")
    for r in references:
        name = "regression twin" if r.method == "regression" else r.method
        lines.append(f"| {name} | | | | | {r.consistency} | {r.nfe} | {r.psnr:.3f} | {r.sam:.3f} | {r.seconds_per_scene:.2f} | | |")
    return "\n".join(lines)


def write_csv(rows: Sequence[SamplingRow], references: Sequence[ReferenceRow], path: str | Path) -> None:
    fields = list(SamplingRow.__dataclass_fields__)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow(asdict(r))
        for r in references:
            writer.writerow({"sampler": r.method, "spacing": "", "steps": 0, "n_samples": 1, "views": 1,
                             "nfe": r.nfe, "psnr": r.psnr, "sam": r.sam,
                             "seconds_per_scene": r.seconds_per_scene, "uncertainty_rank_corr": None, "consistency": r.consistency})


def plot(rows: Sequence[SamplingRow], references: Sequence[ReferenceRow], path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    def is_paper(r: SamplingRow) -> bool:
        return (r.sampler, r.spacing, r.steps, r.n_samples) == (PAPER["sampler"], PAPER["spacing"], PAPER["steps"], 1)

    several = len({r.consistency for r in rows}) > 1

    def projected(c: int) -> str:
        return f", projected ({c})" if several and c else ""

    groups: dict[tuple[str, str, int, int, int], list[SamplingRow]] = {}
    for r in (r for r in rows if not is_paper(r)):
        groups.setdefault((r.sampler, r.spacing, r.n_samples, r.views, r.consistency), []).append(r)
    for (name, spc, n, v, c), rs in groups.items():
        rs = sorted(rs, key=lambda r: r.nfe)
        label = (f"{name} ({spc}" + (f", {n} samples" if n > 1 else "") + (f", {v} views" if n > 1 and v > 1 else "")
                 + projected(c) + ")")
        ax.plot([r.nfe for r in rs], [r.psnr for r in rs], marker="o", label=label)
    for ref in filter(is_paper, rows):
        ax.scatter([ref.nfe], [ref.psnr], marker="*", s=150, zorder=5, label="paper: ancestral, 100 linear" + projected(ref.consistency))
    for i, r in enumerate(references):
        ax.axhline(r.psnr, color=f"C{i % 10}", linestyle="--" if r.consistency else ":",
                   label=("regression twin" if r.method == "regression" else r.method) + (f" (projected, {r.consistency})" if r.consistency else ""))
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
         regression_weights, out_csv, out_plot, views=(1,), paper_reference=True, consistency=None, classical=(),
         classical_settings=None) -> list[SamplingRow]:
    t0 = time.perf_counter()
    rows, references = run(weights, observation_files, schedule_cfg, sampling_cfg, samplers, steps, spacing,
                           n_samples, regression_weights, views, paper_reference, consistency, classical, classical_settings)
    print(markdown(rows, references))
    print(f"\n{len(observation_files)} scenes, {time.perf_counter() - t0:.0f} s wall")
    if out_csv:
        write_csv(rows, references, out_csv)
    if out_plot:
        plot(rows, references, out_plot, title=Path(weights).parent.name)
    return rows
