"""Training figures."""

from __future__ import annotations

from pathlib import Path

from hsrdiff.io import atomic_path


def plot_loss_curve(csv_path: str | Path, png_path: str | Path, title: str = "") -> None:
    """Loss terms against step (log scale) from a stage's CSV log."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.read_csv(csv_path)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    for col, label in (("loss", "total"), ("l1", "L1 to ground truth"), ("lr_term", "LR-HSI term"), ("msi_term", "HR-MSI term"),
                       ("sam_term", "spectral angle (rad)")):
        if col in df and len(df) and df[col].fillna(0).any():
            ax.plot(df["step"], df[col], label=label, lw=1.2)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("L1 loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
