"""The peers comparison of ``videodeblur bench --compare``: their names, engines like ours, and the ratio.

Apart from the runs because only ``--compare`` needs it, and the option check and the runs both do.
The peer networks themselves live in ``videodeblur.bench_peers``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from videodeblur.errors import ConfigError

if TYPE_CHECKING:
    from videodeblur.bench.results import RunResult

__all__ = ["all_peers", "peer_engine", "peer_name", "peer_table"]


def peer_name(name: str) -> str:
    """A peer's name as ``PEERS`` spells it, whatever its case (the help writes NAFNet-32)."""
    for known in all_peers():
        if known == name.lower():
            return known
    raise ConfigError(f"unknown peer {name!r}: use one of {', '.join(all_peers())}")


def all_peers() -> tuple[str, ...]:
    """Every peer ``--compare`` times when no ``--peer`` names some."""
    from videodeblur.bench_peers import PEERS

    return tuple(PEERS)


def peer_engine(peer: str, like: Any) -> Any:
    """An engine that runs ``peer`` with the same device, precision, memory format and compilation as ``like``."""
    from videodeblur.bench_peers import build_peer
    from videodeblur.model import LoadedModel
    from videodeblur.pipeline import Engine

    network = build_peer(peer)
    loaded = LoadedModel(name=peer, path=Path(), network=network, metadata={"peer": True})  # type: ignore[arg-type]
    return Engine(loaded, like.options)


def peer_table(network_runs: list[RunResult]) -> dict[str, dict[str, Any]]:
    """Network-only fps of every network measured, and how many times faster ours is (batch 1)."""
    ours = network_runs[0]
    return {r.model: {"fps": round(r.fps, 3), "parameters": r.extra.get("parameters"),
                      "speed_ratio": round(ours.fps / r.fps, 2) if r.fps > 0 else None}
            for r in network_runs[1:]}
