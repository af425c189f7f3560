"""Training throughput and memory of the network at given widths and patch sizes.

Synthetic inputs of the real shapes (throughput does not depend on pixel values). Figures are
printed as a Markdown table; docs/performance.md records them per machine.
"""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

import torch

from hsrdiff.diffusion import fusion_loss
from hsrdiff.degradation import make_psf
from hsrdiff.models import ModelConfig, build_model


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

    def markdown(self) -> str:
        return (f"| {self.device} | {self.channels} | {self.patch} | {self.batch} | {self.patches_per_s:.1f} | "
                f"{self.step_ms:.0f} | {self.peak_mem_mib:.0f} | {self.params_m:.2f} |")


HEADER = ("| device | channels | patch | batch | patches/s | ms/step | peak memory (MiB) | params (M) |\n"
          "|---|---|---|---|---|---|---|---|")


def bench_one(channels: int, patch: int, batch: int, device: torch.device, steps: int = 3, warmup: int = 1,
              hsi_bands: int = 31, msi_bands: int = 3, ratio: int = 4, depth: int = 4, heads: int = 2, window: int = 8) -> BenchRow:
    torch.manual_seed(0)
    model = build_model(ModelConfig(hsi_bands, msi_bands, channels=channels, depth=depth, heads=heads, window=window)).to(device)
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    psf = make_psf({}, ratio)
    srf = torch.softmax(torch.randn(msi_bands, hsi_bands), 1).to(device)
    gt = torch.rand(batch, hsi_bands, patch, patch, device=device)
    lr_hsi = torch.rand(batch, hsi_bands, patch // ratio, patch // ratio, device=device)
    hr_msi = torch.rand(batch, msi_bands, patch, patch, device=device)
    sg = torch.rand(batch, device=device)
    use_bf16 = device.type == "cuda"
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_bf16):
            x0_hat = model(gt * 2 - 1, sg, lr_hsi * 2 - 1, hr_msi * 2 - 1)
        loss = fusion_loss((x0_hat.float() + 1) / 2, gt, lr_hsi, hr_msi, psf, srf)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

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
    params = sum(p.numel() for p in model.parameters()) / 1e6
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    return BenchRow(name, channels, patch, batch, batch / dt, dt * 1000, peak, params)


def run(widths, sizes, batch, steps, device) -> list[BenchRow]:
    rows = []
    print(HEADER, flush=True)
    for channels in widths:
        for patch in sizes:
            row = bench_one(channels, patch, batch, device, steps=steps, heads=max(2, channels // 32))
            rows.append(row)
            print(row.markdown(), flush=True)
    return rows
