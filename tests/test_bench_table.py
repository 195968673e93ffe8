"""benchmarks/table.py: the Markdown rows of docs/BENCHMARKS.md from `videodeblur bench --json` files."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "table.py"


def _table(*args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=60)


def _bench(path: Path) -> Path:
    """The fields a row reads, as `videodeblur bench --json` writes them."""
    run = {"fps": 10.0, "batch": 1, "peak_rss_mb": 300.0, "latency_ms": {"p50": 90.0, "p95": 120.0}}
    modes = ("decode", "model", "network", "encode", "sequential", "pipelined")
    path.write_text(json.dumps({"model": "lprn-fast", "size": [64, 48], "bound": "model", "overlap": 0.9,
                                "runs": [{**run, "mode": mode} for mode in modes]}))
    return path


def test_a_bench_result_is_one_row(tmp_path: Path) -> None:
    done = _table(_bench(tmp_path / "b.json"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("| lprn-fast | 64×48 | 10 | 10.0 (b1) |")


def test_help_and_bad_files_are_usage_and_one_line_errors(tmp_path: Path) -> None:
    """--help printed a traceback (FileNotFoundError: '--help'), as did a missing file, a file that is not
    JSON and a JSON that is not a bench result (KeyError); no file printed nothing (h2's C7)."""
    shown = _table("--help")
    assert shown.returncode == 0 and shown.stdout.startswith("usage: table.py") and "BENCH.json" in shown.stdout
    assert _table().returncode == 2
    (tmp_path / "text.json").write_text("not json")
    (tmp_path / "other.json").write_text(json.dumps({"frames": 3}))
    for path, said in [(tmp_path / "none.json", "cannot read"), (tmp_path / "text.json", "is not JSON"),
                       (tmp_path / "other.json", "is not a whole `videodeblur bench --json` result (no 'runs')")]:
        done = _table(_bench(tmp_path / "b.json"), path)
        lines = done.stderr.splitlines()
        assert done.returncode == 1 and len(lines) == 1 and lines[0].startswith("table.py: error: "), done.stderr
        assert str(path) in lines[0] and said in lines[0], done.stderr
