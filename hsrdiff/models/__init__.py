"""Networks: CDFormer and its ablation variants (no schedules here: they see only sqrt(gamma))."""

from hsrdiff.models.cdformer import VARIANTS, Condition, Denoiser, ModelConfig, build_model

__all__ = ["VARIANTS", "Condition", "Denoiser", "ModelConfig", "build_model"]
