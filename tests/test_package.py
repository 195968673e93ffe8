"""The package installs as a command and a module: version, help, entry points."""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import videodeblur
from videodeblur.cli import _SUBCOMMANDS, cli


def test_version_through_python_m(run_subprocess):
    result = run_subprocess("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"videodeblur, version {videodeblur.__version__}"
    assert result.stderr == ""


def test_console_script_is_installed_and_runs():
    script = shutil.which("videodeblur", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("package not installed with its console script in this interpreter's bin/")
    proc = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and videodeblur.__version__ in proc.stdout


def test_help_lists_every_command_whose_module_exists(run_subprocess):
    present = {getattr(importlib.import_module(f"videodeblur.cli.{module}"), attr).name
               for module, attr in _SUBCOMMANDS if importlib.util.find_spec(f"videodeblur.cli.{module}") is not None}
    assert "image" in present
    result = run_subprocess("--help")
    assert result.exit_code == 0
    assert _commands_in_help(result.stdout) == present == set(cli.commands)


def test_image_help_names_its_options(run_cli):
    result = run_cli("image", "--help")
    assert result.exit_code == 0
    for option in ("--output", "--model", "--device", "--precision", "--tile"):
        assert option in result.stdout


def test_image_help_says_the_colour_profile_crosses_formats(run_cli):
    """The help said "colour profile: TIFF to TIFF" (and JPEG to JPEG, PNG to PNG), but every JPEG, PNG,
    TIFF, WebP or AVIF output gets the source's profile whatever its format (test_images checks that)."""
    text = " ".join(run_cli("image", "--help").stdout.split())
    assert "the colour profile into any JPEG, PNG, TIFF, WebP or AVIF output" in text
    assert "TIFF to TIFF" not in text


def test_no_command_shows_usage(run_cli):
    result = run_cli()
    assert result.exit_code in (0, 2)  # click prints the help for a bare group
    assert "Usage: videodeblur" in result.stdout + result.stderr


def _commands_in_help(text: str) -> set[str]:
    lines = text.split("Commands:", 1)[1].splitlines()
    return {line.split()[0] for line in lines if line.startswith("  ") and line.strip()}


def test_pipe_format_choices_are_the_writers_containers():
    """The CLI lists them itself so that ``--help`` does not import PyAV; the two lists must agree."""
    from videodeblur.cli.video import video
    from videodeblur.video.outputs import PIPE_FORMATS

    option = next(param for param in video.params if param.name == "pipe_format")
    assert list(option.type.choices) == list(PIPE_FORMATS)


def test_bench_help_names_the_peers_and_the_clip_size_shape(run_cli):
    """--peer took names the help never gave (only the error listed them), --size showed TEXT for a WxH
    value, and --frames read as the frames measured though the warm-up comes out of them."""
    from videodeblur.bench_peers import PEERS

    text = " ".join(run_cli("bench", "--help").stdout.split())
    assert all(name in text for name in PEERS)
    assert "--size WxH" in text and "--batch N[,N...]" in text
    assert "the warm-up included" in text


def test_video_help_says_auto_tries_nvenc_for_10_bit_too(run_cli):
    """The help said 'libx265 for 10-bit', but auto opens hevc_nvenc first where it opens
    (videodeblur.video.encoders.choose_encoder), as it opens h264_nvenc for 8-bit."""
    text = " ".join(run_cli("video", "--help").stdout.split())
    assert "for 10-bit hevc_nvenc if it opens, else libx265" in text


def test_video_help_names_every_encoder_crf_and_preset_reach(run_cli):
    """--crf reaches VP8 (8cc4a57) and mpeg4 (0349060), --preset SVT-AV1 (44ab4c9): the help named
    neither, as if --crf 30 with --encoder mpeg4 were not applied."""
    from videodeblur.video.encoders import encoder_options

    text = " ".join(run_cli("video", "--help").stdout.split())
    assert "libvpx (VP8, 4 at best)" in text and "mpeg4 (as its quantizer)" in text and "SVT-AV1's presets" in text
    # what the help says, the encoders get
    assert encoder_options("libvpx", {"crf"}, crf=0, preset="veryfast")["crf"] == "4"
    assert "qmax" in encoder_options("mpeg4", set(), crf=30, preset="veryfast")
    assert encoder_options("libsvtav1", {"crf"}, crf=30, preset="slow")["preset"] == "5"

def test_video_help_says_where_a_urls_output_goes(run_cli):
    """"Beside each input" has no meaning for a URL: its output goes into the current folder
    (videodeblur.paths), which the help did not say."""
    text = " ".join(run_cli("video", "--help").stdout.split())
    assert "a URL's into the current folder" in text


def test_every_library_the_package_and_its_tests_import_is_declared():
    """`pip install -e '.[test]'` must bring what the tests import: PIL came only because torchvision
    (which no module imports) depends on pillow, so the test extra did not say it."""
    import ast
    import configparser
    import importlib.metadata
    import re

    root = Path(__file__).resolve().parent.parent
    setup = configparser.ConfigParser()
    setup.read(root / "setup.cfg")
    requirements = setup["options"]["install_requires"] + setup["options.extras_require"]["test"]
    declared = {re.split(r"[<>=!~; ]", line.strip())[0].lower() for line in requirements.splitlines() if line.strip()}
    own = {"videodeblur", "conftest"} | {path.stem for path in (root / "tests").glob("*.py")}
    imported: set[str] = set()
    for path in [*(root / "videodeblur").rglob("*.py"), *(root / "tests").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - own - set(sys.stdlib_module_names)
    distributions = importlib.metadata.packages_distributions()
    # opencv-python-headless is the stand-in README names for opencv-python on a server
    undeclared = {name: distributions.get(name) for name in third_party
                  if not {d.lower().removesuffix("-headless") for d in distributions.get(name, [name])} & declared}
    assert undeclared == {}


def test_the_source_distribution_holds_every_script_the_docs_run(monkeypatch):
    """MANIFEST.in says the sdist holds "the docs the README links", and docs/MODEL.md runs
    `bash docs/run_ablations.sh`, which its `docs *.md *.py` left out. Read with setuptools' own
    template rules, every `bash|python docs/... or benchmarks/...` script the docs name is in it."""
    import re

    # the build backend's own MANIFEST.in rules; setuptools is not a declared dependency (a Python 3.12 venv lacks it)
    FileList = pytest.importorskip("setuptools._distutils.filelist").FileList
    root = Path(__file__).resolve().parent.parent
    monkeypatch.chdir(root)
    files = FileList()
    files.findall()
    for line in (root / "MANIFEST.in").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            files.process_template_line(line)
    docs = [root / "README.md", *sorted((root / "docs").glob("*.md"))]
    named = {match for doc in docs
             for match in re.findall(r"(?:bash|python) ((?:docs|benchmarks)/[\w./-]+\.(?:sh|py))", doc.read_text())}
    assert "docs/run_ablations.sh" in named and all((root / path).is_file() for path in named)
    assert sorted(named - {Path(f).as_posix() for f in files.files}) == []
