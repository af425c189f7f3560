"""Networks: CDFormer and its ablation architectures (no schedules here: they see only sqrt(gamma)),
and the weights files that rebuild them."""

from hsrdiff.models.cdformer import ARCHITECTURES, Condition, Denoiser, ModelConfig, build_model
from hsrdiff.models.weights import load_file, load_weights, save_atomic

__all__ = ["ARCHITECTURES", "Condition", "Denoiser", "ModelConfig", "build_model", "load_file", "load_weights",
           "save_atomic"]
