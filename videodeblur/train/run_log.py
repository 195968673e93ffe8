"""A run's CSV logs (``log.csv``, ``val.csv``) and the window of steps one log line averages: kept
apart from the loop so that a resumed run can trim, read and continue the logs of the run it resumes
and log the same loss curve as the uninterrupted run."""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path
from typing import Any

__all__ = ["LogWindow", "append_csv", "forget_after", "has_row", "logged_loss"]


@dataclasses.dataclass
class LogWindow:
    """The steps since the last log line: how many, their loss sum, and their time (``seconds`` spent
    before this process took them over, from a checkpoint; ``start``: when this process did, on
    ``time.perf_counter``). A checkpoint keeps it, so the first line after a resume averages the same
    steps as the uninterrupted run's line does."""

    steps: int = 0
    loss_sum: float = 0.0
    seconds: float = 0.0
    start: float = 0.0

    @classmethod
    def resumed(cls, state: dict[str, float] | None, now: float) -> "LogWindow":
        if not state:
            return cls(start=now)
        return cls(steps=int(state["steps"]), loss_sum=float(state["loss_sum"]), seconds=float(state["seconds"]),
                   start=now)

    def add(self, loss: float) -> None:
        self.steps += 1
        self.loss_sum += loss

    def mean(self) -> float:
        return self.loss_sum / self.steps

    def elapsed(self, now: float) -> float:
        return self.seconds + now - self.start

    def state(self, now: float) -> dict[str, float]:
        return {"steps": self.steps, "loss_sum": self.loss_sum, "seconds": self.elapsed(now) if self.steps else 0.0}


def append_csv(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as a row of ``path``, with a header row (its keys) when the file is new."""
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(record))
        if new:
            writer.writeheader()
        writer.writerow(record)


def forget_after(path: Path, step: int) -> None:
    """Drop the rows of a run's CSV log after ``step``: a killed run logged steps after its last
    checkpoint, which its resumed run logs again."""
    if not path.is_file():
        return
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    kept = [row for row in rows if int(row["step"]) <= step]
    if len(kept) == len(rows) or not rows:
        return
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(kept)
    tmp.replace(path)


def has_row(path: Path, step: int) -> bool:
    """Whether a run's CSV log holds a row for ``step``."""
    if not path.is_file():
        return False
    with path.open(newline="") as fh:
        return any(int(row["step"]) == step for row in csv.DictReader(fh))


def logged_loss(path: Path, step: int) -> float:
    """The loss ``log.csv`` holds for ``step`` (NaN when it has none): the final loss of a run whose
    last step was taken before a resume that only saves its weights."""
    if path.is_file():
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                if int(row["step"]) == step:
                    return float(row["loss"])
    return float("nan")
