"""``videodeblur train`` given what a user mistypes: an empty path (an unset shell variable) and a
resume into a folder that holds another run; each is one line and a non-zero exit, and no run's
files change."""
from __future__ import annotations

from pathlib import Path

import pytest

from conftest import tiny_recipe


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("option", ["--config", "--resume", "--out-dir", "--model-config", "--init"])
def test_an_empty_path_option_is_refused_before_anything_is_written(tmp_path: Path, run_cli, monkeypatch,
                                                                    option: str) -> None:
    """--out-dir "" ran the run into the current folder (last.pt, log.csv, tiny.pt there); --init ""
    trained from the identity, silently; the others said 'config file . is a folder' or 'cannot resume
    from .'."""
    monkeypatch.chdir(tmp_path)
    config = tiny_recipe(tmp_path, tmp_path / "run", steps=1)
    args = ["--config", config, option, ""] if option != "--config" else ["--config", ""]
    result = run_cli("train", *args)
    assert result.exit_code == 1 and len(result.stderr_lines) == 1, result.stderr
    assert result.stderr_lines[0].startswith(f"videodeblur: error: {option} is an empty path (an unset variable?)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "recipe.toml"]


@pytest.mark.parametrize("setting", ["train.out_dir=", "train.init_weights="])
def test_an_empty_path_in_the_recipe_is_refused(tmp_path: Path, run_cli, monkeypatch, setting: str) -> None:
    """The same through --set (or the TOML): train.out_dir "" ran into the current folder."""
    monkeypatch.chdir(tmp_path)
    config = tiny_recipe(tmp_path, tmp_path / "run", steps=1)
    result = run_cli("train", "--config", config, "--set", setting)
    field = setting.rstrip("=")
    assert result.exit_code == 1 and result.stderr_lines[0].startswith(
        f"videodeblur: error: {field} is an empty string (an unset variable?)"), result.stderr
    assert len(result.stderr_lines) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "recipe.toml"]


def test_a_resume_into_a_folder_holding_another_run_is_refused(tmp_path: Path, run_cli) -> None:
    """--resume a/last.pt --out-dir b, b holding a finished run: b's last.pt and weights were replaced
    by a's run and a's steps appended to b's log.csv. Refused, both folders left as they were; the
    checkpoint's own folder and a new folder still take the resume."""
    config = tiny_recipe(tmp_path, tmp_path / "a", steps=2)
    assert run_cli("train", "--config", config).exit_code == 0
    assert run_cli("train", "--config", config, "--out-dir", tmp_path / "b", "--seed", "3").exit_code == 0
    before = {folder: _files(folder) for folder in (tmp_path / "a", tmp_path / "b")}
    last = tmp_path / "a" / "last.pt"
    result = run_cli("train", "--config", config, "--resume", last, "--steps", "3", "--out-dir", tmp_path / "b")
    assert result.exit_code == 1 and result.stderr_lines == [
        f"videodeblur: error: cannot resume {last} into {tmp_path / 'b'}: it holds another run (last.pt, log.csv), "
        f"whose checkpoint and log this one would replace; give --out-dir {tmp_path / 'a'} (the checkpoint's own "
        "folder) or a folder without a run"], result.stderr
    assert {folder: _files(folder) for folder in before} == before
    moved = run_cli("train", "--config", config, "--resume", last, "--steps", "3", "--out-dir", tmp_path / "c")
    assert moved.exit_code == 0, moved.stderr
    assert run_cli("train", "--config", config, "--resume", last, "--steps", "3").exit_code == 0
