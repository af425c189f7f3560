"""The ``hsrdiff`` command line: each pipeline stage on its own, outside Snakemake.

Every command reads the same configuration file as the workflow (validated against the same
schema) and calls the same library function as the workflow's script for that stage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hsrdiff.errors import HsrdiffError

log = logging.getLogger("hsrdiff")


def _spec(args):
    from hsrdiff.config import load_config
    from hsrdiff.data.registry import DatasetSpec

    config = load_config(args.config)
    return config, DatasetSpec.from_config(config, args.dataset)


def cmd_validate(args) -> int:
    from hsrdiff.config import check_consistency, load_config

    source = " + ".join(args.config)
    for line in check_consistency(load_config(args.config), source):
        print(line)
    print(f"{source}: valid")
    return 0


def cmd_download(args) -> int:
    from hsrdiff.data.download import fetch_dataset

    config, spec = _spec(args)
    src, opts = spec.source, config["download"]
    if spec.source_kind != "url":
        raise HsrdiffError(f"dataset '{spec.name}' has no URL to download (source: {spec.source_kind})")
    fetch_dataset(src["url"], args.out or spec.raw_location(), args.cache, sha256=src.get("sha256"), size=src.get("size"),
                  retries=opts["retries"], timeout=opts["timeout_s"], backoff=opts["backoff_s"])
    return 0


def cmd_generate_demo(args) -> int:
    from hsrdiff.data.demo import generate_demo

    _, spec = _spec(args)
    if spec.source_kind != "generate":
        raise HsrdiffError(f"dataset '{spec.name}' is not generated (its source is {spec.source_kind})")
    generate_demo(spec.source["generate"], args.out or spec.raw_location())
    return 0


def cmd_prepare(args) -> int:
    from hsrdiff.data.prepare import prepare_scene

    _, spec = _spec(args)
    prepare_scene(spec.name, spec.scene(args.scene), spec.reader_settings(), spec.raw_location(),
                  args.out or spec.prepared_path(args.scene))
    return 0


def cmd_degrade(args) -> int:
    from hsrdiff.data.simulate import degrade_scene

    _, spec = _spec(args)
    degrade_scene(spec.name, spec.scene(args.scene), spec.degradation_settings(), args.input or spec.prepared_path(args.scene),
                  args.out or spec.degraded_path(args.scene))
    return 0


def cmd_patches(args) -> int:
    from hsrdiff.data.patches import extract_patches
    from hsrdiff.methods import patch_options

    config, spec = _spec(args)
    size = args.patch_size
    inputs = args.inputs or [spec.degraded_path(s) for s in spec.train_scenes]
    extract_patches(inputs, size, args.out or spec.patches_path(size), **patch_options(config))
    return 0


def cmd_train(args) -> int:
    from hsrdiff.provenance import clear_sidecars, stamp
    from hsrdiff.training.trainer import INTERRUPTED_EXIT_CODE, StagePaths, TrainingInterrupted, train_stage

    if args.settings:  # the workflow's way: settings and paths from its stage plan, given explicitly
        settings = json.loads(args.settings)
        missing = [n for n in ("patches", "out", "checkpoint_dir") if getattr(args, n) is None]
        if missing:
            raise HsrdiffError(f"train --settings needs --{', --'.join(m.replace('_', '-') for m in missing)}")
        paths = StagePaths(patches=Path(args.patches), weights=Path(args.out), checkpoint_dir=Path(args.checkpoint_dir),
                           init_weights=Path(args.init) if args.init else None,
                           loss_curve=Path(args.curve) if args.curve else None)
        # As the workflow's scripts do (start_snakemake_job): Snakemake removed the job's old
        # outputs, so their sidecars go too, lest a killed run leave them beside nothing.
        clear_sidecars([p for p in (paths.weights, paths.loss_curve) if p is not None])
    else:  # by hand: the same stage plan as the workflow, each path overridable
        from hsrdiff.methods import planned_stage

        if not (args.dataset and args.stage):
            raise HsrdiffError("train needs --dataset and --stage (with --config), or --settings")
        config, spec = _spec(args)
        planned = planned_stage(config, spec.name, spec.ratio, args.method, args.stage)
        settings = planned.settings
        init = args.init or planned.init_weights
        paths = StagePaths(patches=Path(args.patches or planned.patches), weights=Path(args.out or planned.weights),
                           checkpoint_dir=Path(args.checkpoint_dir or planned.checkpoint_dir),
                           init_weights=Path(init) if init else None, loss_curve=Path(args.curve or planned.loss_curve))
    stage = settings["stage"]
    try:
        summary = train_stage(paths, stage, settings["model"], settings["training"], settings["diffusion"],
                              settings.get("metadata"))
    except TrainingInterrupted as exc:
        log.warning("%s", exc)
        return INTERRUPTED_EXIT_CODE
    if summary["rank"] == 0:  # with several processes, the one that wrote the files
        outputs = [paths.weights] + ([paths.loss_curve] if paths.loss_curve else [])
        inputs = [paths.patches] + ([paths.init_weights] if paths.init_weights else [])
        metadata = settings.get("metadata") or {}
        wildcards = {"dataset": metadata.get("dataset", ""), "method": metadata.get("method", "")}
        stamp(outputs, f"train_{stage['name']}", inputs, settings, wildcards)
    return 0


def check_output_path(out: Path, inputs) -> None:
    """Refuse, before any work, an output that would overwrite an input or cannot be written."""
    import os

    out = Path(out)
    for path in inputs:
        if Path(path).exists() and (out.resolve() == Path(path).resolve() or (out.exists() and os.path.samefile(out, path))):
            raise HsrdiffError(f"--out {out} is the input {path}; writing it would destroy the input: choose another path")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise HsrdiffError(f"--out {out}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise HsrdiffError(f"--out {out}: the folder {parent} is not writable")
    if out.is_dir():
        raise HsrdiffError(f"--out {out} is a folder; give a file name (an HDF5 file)")


def _sampling_config(path: str | None) -> dict:
    """The configuration whose ``sampling`` and ``diffusion.sample_schedule`` fuse uses: outside a
    checkout (an installed wheel) there is no config/config.yaml, and the schema's defaults are
    the same values."""
    from hsrdiff.config import load_config, validate_config

    if path is None:
        default = Path("config/config.yaml")
        return load_config(default) if default.is_file() else validate_config({})
    return load_config(path)


def cmd_fuse(args) -> int:
    from hsrdiff.data.readers import read_cube, split_cube_spec
    from hsrdiff.provenance import stamp
    from hsrdiff.sampling import fuse_files

    config = _sampling_config(args.config)
    sampling = dict(config["sampling"])
    for key in ("sampler", "eta", "tile", "overlap", "tile_batch", "n_samples", "views", "consistency", "seed", "device"):
        if getattr(args, key) is not None:
            sampling[key] = getattr(args, key)
    schedule = dict(config["diffusion"]["sample_schedule"])
    if args.steps:
        schedule["steps"] = args.steps
    if args.spacing:
        schedule["spacing"] = args.spacing
    inputs = [args.weights] + [split_cube_spec(spec)[0] for spec in (args.lr_hsi, args.hr_msi)]
    operators = None
    if args.operators is not None:
        from hsrdiff.files import read_operators
        from hsrdiff.io import open_h5

        inputs.append(args.operators)
        with open_h5(args.operators) as fh:
            operators = read_operators(fh)
    check_output_path(args.out, inputs)
    lr_hsi, hr_msi = read_cube(args.lr_hsi, args.scale), read_cube(args.hr_msi, args.scale)
    result = fuse_files(args.weights, lr_hsi, hr_msi, args.out, schedule, sampling,
                        provenance={"lr_hsi": args.lr_hsi, "hr_msi": args.hr_msi}, operators=operators)
    stamp([args.out], "hsrdiff fuse", inputs, {"schedule": schedule, "sampling": sampling})
    log.info("fused %s -> %s in %.1f s", args.lr_hsi, args.out, result.seconds)
    if operators is None and sampling.get("consistency"):
        log.info("not projected onto the observations: sampling.consistency needs their PSF and SRF (--operators)")
    return 0


def cmd_bench_train(args) -> int:
    from hsrdiff.bench import run
    from hsrdiff.sampling import resolve_device

    device = resolve_device(args.device)
    run(args.widths, args.sizes, args.batch, args.steps, device, args.activation_checkpointing)
    return 0


def cmd_bench_sampling(args) -> int:
    from hsrdiff.bench_sampling import main as bench
    from hsrdiff.methods import classical_settings

    config = _sampling_config(args.config)
    sampling = {**config["sampling"], "device": args.device}
    if args.tile is not None:
        sampling["tile"] = args.tile
    from hsrdiff.diffusion import SAMPLERS

    bench(args.weights, args.observations, config["diffusion"]["sample_schedule"], sampling, args.samplers or list(SAMPLERS), args.steps,
          args.spacing, args.n_samples, args.regression, args.csv, args.plot, args.views, not args.no_paper_reference,
          args.consistency, args.classical, classical_settings(config))
    return 0


def cmd_probe_noise(args) -> int:
    from hsrdiff.sampling import x0_quality_by_noise_level

    rows = x0_quality_by_noise_level(args.weights, args.observations, device=args.device)
    print("| sqrt(gamma) | noise std | x0_hat PSNR (dB) | x_t PSNR (dB) |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['sqrt_gamma']} | {r['noise_std']:.3f} | {r['x0_hat_psnr']:.2f} | {r['x_t_psnr']:.2f} |")
    return 0


def cmd_probe_base(args) -> int:
    from hsrdiff.sampling import resolve_device
    from hsrdiff.training.probe import loss_against_base

    rows = loss_against_base(args.weights, args.patches, device=resolve_device(args.device))
    print("| weights | base | base loss (L1 / LR / MSI) | network loss (L1 / LR / MSI) | network below base |\n|---|---|---|---|---|")
    for r in rows:
        terms = {who: f"{r[who + '_loss']:.6f} ({r[who + '_l1']:.6f} / {r[who + '_lr_term']:.6f} / {r[who + '_msi_term']:.6f})"
                 for who in ("base", "net")}
        print(f"| {r['weights']} | {r['base']} | {terms['base']} | {terms['net']} | {100 * (1 - r['net_loss'] / r['base_loss']):.2f} % |")
    return 0


def cmd_probe_bases(args) -> int:
    import pandas as pd

    from hsrdiff.evaluation import score_bases

    rows = pd.DataFrame(score_bases(args.observations, args.bases, args.weights))
    psnr = rows.pivot(index="scene", columns="image", values="psnr")
    better_part = psnr[args.bases].max(axis=1) if len(args.bases) == 2 else None
    print(f"Mean over {len(psnr)} scenes.\n\n| image | PSNR (dB) | SSIM | SAM (°) | ERGAS | ahead of the better base on |\n"
          "|---|---|---|---|---|---|")
    for image, group in rows.groupby("image", sort=False):
        ahead = "" if better_part is None or image in args.bases else f"{int((psnr[image] > better_part).sum())} of {len(psnr)}"
        mean = group[["psnr", "ssim", "sam", "ergas"]].mean()
        print(f"| {image} | {mean['psnr']:.3f} | {mean['ssim']:.4f} | {mean['sam']:.3f} | {mean['ergas']:.3f} | {ahead} |")
    return 0


def cmd_info(args) -> int:
    from hsrdiff.io import open_h5

    with open_h5(args.file) as fh:
        out = {"attrs": {k: (v.item() if hasattr(v, "item") else v) for k, v in fh.attrs.items()}, "datasets": {}}
        fh.visititems(lambda n, o: out["datasets"].__setitem__(n, f"{o.shape} {o.dtype}") if hasattr(o, "shape") else None)
    print(json.dumps(out, indent=2, default=str))
    return 0


def _count(minimum: int):
    """An argparse type: an integer of at least ``minimum``, refused with the value otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below {minimum}")
        return value
    return parse


def _patch_size(text: str) -> int | str:
    return text if text == "full" else _count(1)(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hsrdiff", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    def stage(name, func, help_, scene=False):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--config", default="config/config.yaml", help="configuration file (default: %(default)s)")
        p.add_argument("--dataset", required=True, help="registry entry (a key of 'datasets')")
        if scene:
            p.add_argument("--scene", required=True, help="scene name")
        p.add_argument("--out", type=Path, help="output (default: the workflow's path under resources/)")
        p.set_defaults(func=func)
        return p

    p = sub.add_parser("validate-config", help="check a configuration (several files: merged in order, as "
                       "snakemake --configfile a.yaml b.yaml) as the workflow will see it; list its active datasets")
    p.add_argument("config", nargs="*", default=["config/config.yaml"])
    p.set_defaults(func=cmd_validate)

    p = stage("download", cmd_download, "download (and extract) a dataset's raw files")
    p.add_argument("--cache", type=Path, default=Path("resources/cache"), help="where partial and complete downloads are kept")
    stage("generate-demo", cmd_generate_demo, "generate the embedded demo dataset")
    stage("prepare", cmd_prepare, "native format -> HDF5 (bands, height, width) in [0, 1]", scene=True)
    p = stage("degrade", cmd_degrade, "simulate lr_hsi and hr_msi from a prepared scene", scene=True)
    p.add_argument("--input", type=Path, help="prepared scene file (default: the workflow's path)")
    p = stage("patches", cmd_patches, "cut training patches for one patch size")
    p.add_argument("--patch-size", required=True, type=_patch_size, help="patch side in pixels, or 'full'")
    p.add_argument("--inputs", nargs="*", type=Path, help="degraded training scenes (default: the workflow's paths)")

    p = sub.add_parser("train", help="train one stage of the progressive schedule (resumes from its checkpoints)")
    p.add_argument("--config", default="config/config.yaml", help="configuration file (default: %(default)s)")
    p.add_argument("--dataset", help="registry entry (with --config)")
    p.add_argument("--stage", help="stage name from training.stages (with --config)")
    p.add_argument("--method", default="hsrdiff", help="the trained method: hsrdiff or a key of 'trained_methods' (with --config)")
    p.add_argument("--settings", help="JSON of {stage, model, training, diffusion, metadata} instead of --config (the workflow's way)")
    p.add_argument("--patches", type=Path, help="patch file of the stage's patch size")
    p.add_argument("--out", type=Path, help="final weights file")
    p.add_argument("--checkpoint-dir", type=Path, help="folder of resumable checkpoints and the CSV log")
    p.add_argument("--init", type=Path, help="weights of the previous stage")
    p.add_argument("--curve", type=Path, help="loss-curve PNG")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("fuse", help="fuse your own LR-HSI and HR-MSI (bands, H, W) with a trained weights file")
    p.add_argument("--weights", required=True, type=Path, help="a stage's weights file (results/<dataset>/models/<stage>.pt)")
    p.add_argument("--lr-hsi", required=True, help="(bands, h, w): file.npy, file.tif, or file.{h5,mat,npz}:name; values on [0, 1] (integers: --scale)")
    p.add_argument("--hr-msi", required=True, help="likewise, the MSI at ratio x the LR-HSI's size")
    p.add_argument("--out", required=True, type=Path, help="output HDF5 (fused, std when --n-samples > 1)")
    p.add_argument("--scale", help="divide integer inputs by their type's maximum ('dtype') or by a number")
    p.add_argument("--config", help="sampling defaults: a configuration file (default: config/config.yaml where "
                   "it exists, else the schema's defaults, which the shipped file does not change)")
    p.add_argument("--sampler", help="ancestral, ddim or dpm-solver++ (default: the config's)")
    p.add_argument("--steps", type=_count(1), help="refinement steps = network evaluations per sample (default: the config's)")
    p.add_argument("--spacing", help="noise-level spacing: linear, log_snr or train (default: the config's)")
    p.add_argument("--eta", type=float, help="DDIM's stochasticity, 0 to 1")
    p.add_argument("--tile", type=_count(8))
    p.add_argument("--overlap", type=_count(0))
    p.add_argument("--tile-batch", type=_count(1), help="tiles sent through the network together")
    p.add_argument("--n-samples", type=_count(1))
    p.add_argument("--views", type=int, choices=(1, 2, 4, 8),
                   help="rotated and mirrored views of the inputs the samples cycle through (default: the config's)")
    p.add_argument("--consistency", type=_count(0),
                   help="CGLS iterations of the projection onto the observations, 0: off (default: the config's; needs --operators)")
    p.add_argument("--operators", type=Path,
                   help="HDF5 file with the observations' psf and srf (as in resources/degraded/<dataset>/*.h5), for --consistency")
    p.add_argument("--seed", type=int)
    p.add_argument("--device")
    p.set_defaults(func=cmd_fuse)

    p = sub.add_parser("bench-train", help="print training patches/s and peak memory per width and patch size")
    p.add_argument("--widths", type=_count(1), nargs="+", default=[32, 256], help="channel widths (demo 32, paper 256)")
    p.add_argument("--sizes", type=_count(8), nargs="+", default=[32, 64, 128], help="patch sizes")
    p.add_argument("--batch", type=_count(1), default=4)
    p.add_argument("--steps", type=_count(1), default=3, help="timed steps after one warm-up step")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="recompute activations in the backward pass, as training.activation_checkpointing does")
    p.set_defaults(func=cmd_bench_train)

    p = sub.add_parser("bench-sampling", help="PSNR, SAM, network evaluations and seconds per sampler and step count")
    p.add_argument("--weights", required=True, type=Path, help="a diffusion stage's weights file")
    p.add_argument("observations", nargs="+", type=Path, help="degraded test scenes (with gt), e.g. resources/degraded/demo/test_*.h5")
    p.add_argument("--regression", type=Path, help="the regression twin's weights: its score is the reference line")
    p.add_argument("--samplers", nargs="+", help="default: all (ancestral, ddim, dpm-solver++)")
    p.add_argument("--steps", type=_count(1), nargs="+", default=[1, 2, 3, 5, 10, 20, 50, 100])
    p.add_argument("--spacing", default="log_snr",
                   help="noise-level spacing of the compared samplers (default: %(default)s); the paper's ancestral, 100 linear steps is always measured")
    p.add_argument("--n-samples", type=_count(1), nargs="+", default=[1], help="samples averaged per scene (one row set each)")
    p.add_argument("--views", type=int, choices=(1, 2, 4, 8), nargs="+", default=[1],
                   help="views of the inputs the samples cycle through (one row set each; default: %(default)s)")
    p.add_argument("--consistency", type=_count(0), nargs="+",
                   help="iterations of the projection onto the observations, one row set (and reference line) each "
                        "(default: the config's sampling.consistency; 0: none)")
    p.add_argument("--classical", nargs="+", default=[],
                   help="classical methods as reference lines (cnmf, gsa, glp-hs, bicubic), as published and projected like the samples")
    p.add_argument("--no-paper-reference", action="store_true",
                   help="leave out the paper's sampler (100 network evaluations per scene: hours for 512x512 scenes on a CPU)")
    p.add_argument("--config", help="sampling defaults: a configuration file (default: config/config.yaml where "
                   "it exists, else the schema's defaults, which the shipped file does not change)")
    p.add_argument("--tile", type=_count(8))
    p.add_argument("--csv", type=Path, help="write the table as CSV")
    p.add_argument("--plot", type=Path, help="write the PSNR-vs-evaluations plot (PNG)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=cmd_bench_sampling)

    p = sub.add_parser("probe-noise", help="does a trained denoiser use its noisy input? x0_hat PSNR per noise level")
    p.add_argument("--weights", required=True, type=Path, help="a stage's weights file")
    p.add_argument("observations", nargs="+", type=Path, help="degraded scene files (with gt), e.g. resources/degraded/demo/test_*.h5")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=cmd_probe_noise)

    p = sub.add_parser("probe-base", help="does a trained network get below its base? training loss over a patch file")
    p.add_argument("--patches", required=True, type=Path, help="a patch file, e.g. resources/patches/demo/p32.h5")
    p.add_argument("weights", nargs="+", type=Path, help="weights files of networks trained on these patches")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.set_defaults(func=cmd_probe_base)

    p = sub.add_parser("probe-bases", help="which base should a network start from? the metrics of bases and their mixes")
    p.add_argument("observations", nargs="+", type=Path,
                   help="degraded scene files (with gt) to choose on: training scenes, e.g. resources/degraded/cave/beads.h5")
    p.add_argument("--bases", nargs="+", default=["glp-hs+p20", "cnmf+p20"],
                   help="model.base names, +p<N> for N projection iterations (default: glp-hs+p20 cnmf+p20)")
    p.add_argument("--weights", nargs="*", type=float, default=[0.25, 0.5, 0.75],
                   help="mixes (1 - w) first + w second of two bases (default: 0.25 0.5 0.75; none: no mix)")
    p.set_defaults(func=cmd_probe_bases)

    p = sub.add_parser("info", help="print the datasets and attributes of an HDF5 file")
    p.add_argument("file", type=Path)
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    from hsrdiff.log import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(level=logging.DEBUG if args.verbose else logging.INFO)
    try:
        return args.func(args)
    except HsrdiffError as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
