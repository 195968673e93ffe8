"""Blur synthesis, datasets, losses, metrics, the trainer and evaluation."""
from videodeblur.train.evaluate import (EvalReport, combined_summary, evaluate_pairs, write_averaged_pairs,
                                        write_compressed_pairs)
from videodeblur.train.metrics import psnr, ssim
from videodeblur.train.recipe import TrainRecipe, load_recipe
from videodeblur.train.trainer import TrainResult, train

__all__ = ["train", "TrainRecipe", "TrainResult", "load_recipe", "evaluate_pairs", "EvalReport",
           "combined_summary", "write_averaged_pairs", "write_compressed_pairs", "psnr", "ssim"]
