"""Blur synthesis, datasets, losses, metrics, the trainer and evaluation.

Its names are imported on first use (``videodeblur.lazy_exports``): the trainer and evaluation load
torch (2-3 s), and ``train`` and ``eval`` should say a mistyped path before that.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from videodeblur.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from videodeblur.train.evaluate import (EvalReport, combined_summary, evaluate_pairs, write_averaged_pairs,
                                            write_compressed_pairs)
    from videodeblur.train.metrics import psnr, ssim
    from videodeblur.train.recipe import TrainRecipe, load_recipe
    from videodeblur.train.trainer import TrainResult, train

__all__ = ["train", "TrainRecipe", "TrainResult", "load_recipe", "evaluate_pairs", "EvalReport",
           "combined_summary", "write_averaged_pairs", "write_compressed_pairs", "psnr", "ssim"]

__getattr__, __dir__ = lazy_exports(__name__, {
    "evaluate": ("EvalReport", "combined_summary", "evaluate_pairs", "write_averaged_pairs", "write_compressed_pairs"),
    "metrics": ("psnr", "ssim"),
    "recipe": ("TrainRecipe", "load_recipe"),
    "trainer": ("TrainResult", "train"),
})
