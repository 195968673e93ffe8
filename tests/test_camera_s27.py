"""``videodeblur camera`` as a demanding user meets it (session 27's audit): standard input named as
the user gave it, not as ``/dev/stdin``, in its errors and its stats."""
from __future__ import annotations

import json
from pathlib import Path

CPU = ("--model", "lprn-fast", "--device", "cpu")


def test_standard_input_is_named_so_in_the_stats_and_errors(run_subprocess, make_clip, tmp_path: Path) -> None:
    """``--source -`` was "/dev/stdin" (the path it is opened by) in the stats and in every error."""
    from _clips_video import remuxed

    clip = remuxed(make_clip("a.mp4", width=64, height=48, frames=4), tmp_path / "a.ts")
    result = run_subprocess("camera", "--source", "-", "--no-preview", *CPU, "--json", stdin=clip)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["source"] == "standard input"
    text = tmp_path / "notes.txt"
    text.write_text("not a video\n")
    refused = run_subprocess("camera", "--source", "-", "--no-preview", *CPU, stdin=text)
    assert refused.exit_code == 1
    assert refused.stderr_lines == ["videodeblur: error: cannot open source standard input: "
                                    "Invalid data found when processing input"], refused.stderr
