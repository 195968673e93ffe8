"""Would the shipped networks gain more if their change were larger? Scores ``x + k * (net(x) - x)``
on the validation and evaluation sets (clean and H.264) for each ``k``.

    python docs/scale_change.py lprn 1.0 1.5

Prints one line per ``k``: (gain dB, sharp-through dB) per set. Tenth session: see docs/MODEL.md,
"Scaling the network's change".
"""
from __future__ import annotations

import argparse

import torch

from videodeblur.model import load_model
from videodeblur.train.evaluate import evaluate_pairs

SETS = {"val": "runs/val_bikes000", "val_h264": "runs/val_bikes000_h264crf23",
        "eval": "runs/eval_pairs", "eval_h264": "runs/eval_pairs_h264crf23"}


class ScaledChange(torch.nn.Module):
    """The network's output moved ``k`` times as far from its input."""

    def __init__(self, network: torch.nn.Module, k: float) -> None:
        super().__init__()
        self.network, self.k = network, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.k * (self.network(x) - x)


def main(model: str, factors: list[float]) -> None:
    network = load_model(model).network.eval()
    for k in factors:
        row = {}
        for name, root in SETS.items():
            summary = evaluate_pairs(ScaledChange(network, k), root).summary(model)
            row[name] = (summary["gain_db"], summary["psnr_sharp_through"])
        print(model, k, row, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a shipped model name or a weights file")
    parser.add_argument("factors", nargs="*", type=float, default=[1.0, 1.5], metavar="K",
                        help="scales of the network's change to score (default: 1.0 1.5)")
    args = parser.parse_args()
    main(args.model, args.factors)
