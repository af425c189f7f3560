"""Training throughput and memory of the network at given widths and patch sizes.

Synthetic inputs of the real shapes (throughput does not depend on pixel values). Figures are
printed as a Markdown table; docs/performance.md records them per machine.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

import torch

from hsrdiff.degradation import make_psf
from hsrdiff.models import ModelConfig
from hsrdiff.training.settings import Stage, TrainingSettings
from hsrdiff.training.trainer import build, train_step


@dataclass
class BenchRow:
    device: str
    channels: int
    patch: int
    batch: int
    patches_per_s: float
    step_ms: float
    peak_mem_mib: float
    params_m: float
    checkpointed: bool = False

    def markdown(self) -> str:
        return (f"| {self.device} | {self.channels} | {self.patch} | {self.batch} | {_yes_no(self.checkpointed)} | "
                f"{self.patches_per_s:.1f} | {self.step_ms:.0f} | {self.peak_mem_mib:.0f} | {self.params_m:.2f} |")


def _yes_no(flag: bool) -> str:
    return "yes" if flag else "no"


HEADER = ("| device | channels | patch | batch | activation checkpointing | patches/s | ms/step | peak memory (MiB) | params (M) |\n"
          "|---|---|---|---|---|---|---|---|---|")


def bench_one(channels: int, patch: int, batch: int, device: torch.device, steps: int = 3, warmup: int = 1,
              hsi_bands: int = 31, msi_bands: int = 3, ratio: int = 4, depth: int = 4, heads: int = 2, window: int = 8,
              activation_checkpointing: bool = False) -> BenchRow:
    """Time :func:`hsrdiff.training.trainer.train_step`, the trainer's own step, with the
    schema's default training settings (``activation_checkpointing`` as the trainer sets it)."""
    settings = TrainingSettings.from_dict({})
    stage = Stage.from_dict({"name": "bench", "patch_size": patch, "batch_size": batch})
    parts = build(ModelConfig(hsi_bands, msi_bands, channels=channels, depth=depth, heads=heads, window=window), stage,
                  settings, None)
    parts.model.to(device).train()
    parts.model.activation_checkpointing = activation_checkpointing
    psf = make_psf({}, ratio)
    srf = torch.softmax(torch.randn(msi_bands, hsi_bands), 1).to(device)
    data = {"gt": torch.rand(batch, hsi_bands, patch, patch, device=device),
            "lr_hsi": torch.rand(batch, hsi_bands, patch // ratio, patch // ratio, device=device),
            "hr_msi": torch.rand(batch, msi_bands, patch, patch, device=device)}
    sqrt_gamma, eps = torch.rand(batch, device=device), torch.randn_like(data["gt"])
    use_bf16 = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        train_step(parts.model, parts, data, sqrt_gamma, eps, psf, srf, settings, use_bf16)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (KiB on Linux)
    dt = (time.perf_counter() - t0) / steps
    params = sum(p.numel() for p in parts.model.parameters()) / 1e6
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return BenchRow(name, channels, patch, batch, batch / dt, dt * 1000, peak, params, activation_checkpointing)


def run(widths, sizes, batch, steps, device, activation_checkpointing: bool = False) -> list[BenchRow]:
    rows = []
    print(HEADER, flush=True)
    for channels in widths:
        for patch in sizes:
            try:
                row = bench_one(channels, patch, batch, device, steps=steps, heads=max(2, channels // 32),
                                activation_checkpointing=activation_checkpointing)
            except torch.OutOfMemoryError:
                # A size that does not fit is a figure too (the largest trainable patch); the
                # smaller widths and sizes of the table are still worth measuring.
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                print(f"| {device} | {channels} | {patch} | {batch} | {_yes_no(activation_checkpointing)} | out of memory | | | |",
                      flush=True)
                continue
            rows.append(row)
            print(row.markdown(), flush=True)
    return rows
