"""Ship a training run's weights as one of the named models, with its figures in the metadata.

    python docs/ship_run.py runs/abl-static1/seed2/lprn-t6-both/lprn-t6-both.pt lprn \
        --trained-as "ablation row lprn-t6-both, seed 2, of configs/train/ablation-still-camera.toml ..."

Why a script: shipping is a rule applied by hand (docs/MODEL.md, "Scene variety": beat the shipped
model on validation, be no worse on evaluation), and each step of it used to be typed out. This
copies the weights under the model's name (only the config's ``name`` changes, so `videodeblur
models` shows the right row), keeps the run's metadata (recipe, steps, seconds, hardware, commit),
and scores the copy on the run's validation and evaluation pairs, which it stores as ``validation``
and ``evaluation``. It prints both gains beside the replaced model's, and refuses to ship unless the
rule holds (``--force`` ships anyway, for a deliberate exception to be written up).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from videodeblur.model import LPRN, SHIPPED_MODELS, load_model, save_weights, shipped_weights_path
from videodeblur.train import evaluate_pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="the run's weights (.pt with its .json beside it)")
    parser.add_argument("name", choices=list(SHIPPED_MODELS))
    parser.add_argument("--trained-as", required=True, help="where the weights come from, in words")
    parser.add_argument("--force", action="store_true", help="ship even if the rule does not hold")
    args = parser.parse_args()

    run = load_model(args.weights)
    meta = dict(run.metadata)
    val_pairs, eval_pairs = meta["recipe"]["val_pairs"], meta["recipe"]["eval_pairs"]

    def score(net: LPRN) -> tuple[dict, dict]:
        return tuple(evaluate_pairs(net, Path(pairs)).summary(args.name) for pairs in (val_pairs, eval_pairs))

    network = LPRN(dataclasses.replace(run.network.config, name=args.name))
    network.load_state_dict(run.network.state_dict())
    network.eval()
    validation, evaluation = score(network)

    target = shipped_weights_path(args.name)
    old_val = old_eval = float("-inf")
    if target.is_file():  # scored now, on the same pairs, rather than trusted from its metadata
        old_val, old_eval = (s["gain_db"] for s in score(load_model(args.name).network))
    print(f"validation {validation['gain_db']:+.3f} dB (shipped {old_val:+.3f}), "
          f"evaluation {evaluation['gain_db']:+.3f} dB (shipped {old_eval:+.3f}), "
          f"sharp through {evaluation['psnr_sharp_through']:.1f} dB")
    if not (validation["gain_db"] > old_val and evaluation["gain_db"] >= old_eval) and not args.force:
        print("not shipped: it must beat the shipped model on validation and be no worse on evaluation")
        return 1
    meta.update(trained_as=args.trained_as, val_pairs=val_pairs, validation=validation,
                eval_pairs=eval_pairs, evaluation=evaluation)
    save_weights(target, network, meta)
    print(f"shipped {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
