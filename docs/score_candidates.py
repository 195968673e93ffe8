"""Score several weights (shipped names or .pt files) on the shipping rule's four sets, as one table.

    python docs/score_candidates.py lprn runs/lprn-ft-h264/lprn-t6-both.pt runs/lprn-ft-h264/lprn-t6-both-best.pt

Why: ``docs/ship_run.py`` applies the rule to one candidate and rescores the shipped model each time;
choosing among a run's last and best weights, or among seeds, needs every candidate side by side on
the same sets. Columns: the gain in dB on each set, the rule's two means (validation decides,
evaluation vetoes) and the sharp-through PSNR on the clean evaluation set. ``--json FILE`` keeps the
full summaries (per scene too) so a table can be rebuilt without rescoring. ``--record`` stores the
scores in the metadata of every shipped model named (as ``docs/ship_run.py`` does when it ships), so
a model the rule keeps shows its H.264 figure in `videodeblur models` too.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ship_run import EVALUATION_SETS, VALIDATION_SETS, figures_metadata, score  # type: ignore[import-not-found]

from videodeblur.model import SHIPPED_MODELS, load_model, write_metadata


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="+", help="shipped model names or .pt files")
    parser.add_argument("--json", dest="json_path", help="write every summary to this file")
    parser.add_argument("--record", action="store_true", help="store the scores in shipped models' metadata")
    args = parser.parse_args()

    names = ("val clean", "val H.264", "val mean", "eval clean", "eval H.264", "eval mean", "sharp dB")
    print(" | ".join(["weights", *names]))
    results = {}
    for weights in args.weights:
        loaded = load_model(weights)
        validation, evaluation = (score(loaded.network, sets, weights) for sets in (VALIDATION_SETS, EVALUATION_SETS))
        row = [s["gain_db"] for summary in (validation, evaluation) for s in (*summary["sets"].values(), summary)]
        sharp = evaluation["sets"][EVALUATION_SETS[0]]["psnr_sharp_through"]
        print(" | ".join([weights, *(f"{g:+.3f}" for g in row), f"{sharp:.1f}"]), flush=True)
        results[weights] = {**validation["sets"], **evaluation["sets"]}
        if args.record and weights in SHIPPED_MODELS:
            write_metadata(loaded.path, {**loaded.metadata,
                                         **figures_metadata(validation, evaluation, VALIDATION_SETS, EVALUATION_SETS)})
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
