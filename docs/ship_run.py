"""Ship a training run's weights as one of the named models, with its figures in the metadata.

    python docs/ship_run.py runs/abl-static1/seed2/lprn-t6-both/lprn-t6-both.pt lprn \
        --trained-as "ablation row lprn-t6-both, seed 2, of configs/train/ablation-still-camera.toml ..."

Why a script: shipping is a rule applied by hand (docs/MODEL.md, "Scene variety", amended in "The
shipping rule scores compressed input too"): beat the shipped model on validation, be no worse on
evaluation, keep sharp frames (>= 38 dB). Since the eighth session validation is the mean gain over
the clean validation set and its H.264 copy, and evaluation likewise over the clean evaluation set
and its H.264 copy, because every video the product reads is compressed. This copies the weights
under the model's name (only the config's ``name`` changes, so `videodeblur models` shows the right
row), keeps the run's metadata (recipe, steps, seconds, hardware, commit; for a fine-tune also
its starting weights' under ``init``), scores the copy and the
shipped model on every set, stores the scores (``validation``: the mean with each set under
``sets``; ``evaluation``: the clean evaluation set, the issue's figure; ``evaluation_compressed``:
its H.264 copy), prints them beside the replaced model's, and refuses to ship unless the rule holds
(``--force`` ships anyway, for a deliberate exception to be written up).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from videodeblur.model import LPRN, SHIPPED_MODELS, load_model, save_weights, shipped_weights_path, weights_origin
from videodeblur.train import combined_summary, evaluate_pairs

VALIDATION_SETS = ("runs/val_bikes000", "runs/val_bikes000_h264crf23")
EVALUATION_SETS = ("runs/eval_pairs", "runs/eval_pairs_h264crf23")  # clean first: the figure
SHARP_THROUGH_FLOOR_DB = 38.0


def score(net: LPRN, sets: tuple[str, ...], name: str) -> dict:
    """The rule's score on ``sets``: their mean (``combined_summary``), each set's own under ``sets``."""
    return combined_summary([evaluate_pairs(net, Path(s)).summary(name) for s in sets], sets)


def figures_metadata(validation: dict, evaluation: dict, val_sets: tuple[str, ...],
                     eval_sets: tuple[str, ...]) -> dict:
    """The metadata keys a shipped model's figures live under: ``validation`` (the mean, each set under
    ``sets``), ``evaluation`` (the clean evaluation set, the issue's figure) and, with an H.264 copy,
    ``evaluation_compressed``."""
    meta = {"val_pairs": list(val_sets), "validation": validation, "eval_pairs": eval_sets[0],
            "evaluation": evaluation.get("sets", {}).get(eval_sets[0], evaluation)}
    if len(eval_sets) > 1:
        meta.update(eval_pairs_compressed=eval_sets[1], evaluation_compressed=evaluation["sets"][eval_sets[1]])
    return meta


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", help="the run's weights (.pt with its .json beside it)")
    parser.add_argument("name", choices=list(SHIPPED_MODELS))
    parser.add_argument("--trained-as", required=True, help="where the weights come from, in words")
    parser.add_argument("--force", action="store_true", help="ship even if the rule does not hold")
    parser.add_argument("--dry-run", action="store_true", help="score and say whether the rule holds; write nothing")
    parser.add_argument("--val", action="append", help=f"validation set (repeatable; default {VALIDATION_SETS})")
    parser.add_argument("--eval", action="append", help=f"evaluation set (repeatable; default {EVALUATION_SETS})")
    args = parser.parse_args()
    val_sets, eval_sets = tuple(args.val or VALIDATION_SETS), tuple(args.eval or EVALUATION_SETS)

    run = load_model(args.weights)
    meta = dict(run.metadata)
    init = (meta.get("recipe") or {}).get("init_weights")
    if init and "init" not in meta:
        # a fine-tune: keep where its starting weights came from, read now, before a shipped name
        # that it started from is overwritten by this very file
        meta["init"] = weights_origin(load_model(init), init)

    network = LPRN(dataclasses.replace(run.network.config, name=args.name))
    network.load_state_dict(run.network.state_dict())
    network.eval()
    validation, evaluation = score(network, val_sets, args.name), score(network, eval_sets, args.name)
    figures = figures_metadata(validation, evaluation, val_sets, eval_sets)
    clean_eval = figures["evaluation"]

    target = shipped_weights_path(args.name)
    old_val = old_eval = float("-inf")
    if target.is_file():  # scored now, on the same pairs, rather than trusted from its metadata
        shipped = load_model(args.name).network
        old_val, old_eval = (score(shipped, sets, args.name)["gain_db"] for sets in (val_sets, eval_sets))
    for label, summary in (("validation", validation), ("evaluation", evaluation)):
        parts = ", ".join(f"{name} {s['gain_db']:+.3f}" for name, s in summary.get("sets", {}).items())
        print(f"{label}: mean gain {summary['gain_db']:+.3f} dB" + (f" ({parts})" if parts else ""))
    print(f"shipped {args.name}: validation {old_val:+.3f} dB, evaluation {old_eval:+.3f} dB; "
          f"candidate's sharp through {clean_eval['psnr_sharp_through']:.1f} dB")
    holds = (validation["gain_db"] > old_val and evaluation["gain_db"] >= old_eval
             and clean_eval["psnr_sharp_through"] >= SHARP_THROUGH_FLOOR_DB)
    if args.dry_run:
        print("the rule holds" if holds else "the rule does not hold")
        return 0 if holds else 1
    if not holds and not args.force:
        print("not shipped: it must beat the shipped model on validation, be no worse on evaluation "
              f"and keep sharp frames at >= {SHARP_THROUGH_FLOOR_DB:.0f} dB")
        return 1
    meta.update(trained_as=args.trained_as, **figures)
    save_weights(target, network, meta)
    print(f"shipped {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
