"""ebcache for PyTorch DiTs: follow a cache schedule (apply_schedule), record a run (record).

Both work on the official facebookresearch/DiT `DiT` class (blocks with attn / mlp / adaLN_modulation,
`forward` and `forward_with_cfg`) and on diffusers' `DiTTransformer2DModel` (transformer_blocks with
attn1 / ff), by replacing the forward of the model, its blocks and their attention and MLP modules on
the instance while the context is open; the model's code is not copied.
"""
try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the environment
    raise ImportError("ebcache.torch needs PyTorch (the 'torch' package), which is not importable here: "
                      "install torch, or use ebcache's schedule and recording readers without it") from e

from ebcache.torch.hooks import ScheduleHooks, apply_schedule, model_layout  # noqa: E402
from ebcache.torch.record import record  # noqa: E402

__all__ = ["ScheduleHooks", "apply_schedule", "model_layout", "record"]
