"""Input lists and output folders shared by the commands that take several files (``image``, ``video``).

Why here: both expand folders the same way (one level deep, in name order), create output folders
with the same errors, and refuse two inputs that would write one output, before any work starts.
"""
from __future__ import annotations

import errno
import os
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Callable, Iterator, Sequence

from videodeblur.errors import InputNotFoundError, OutputError, UnreadableInputError, VideoDeblurError
from videodeblur.notices import Warn
from videodeblur.video.locations import URL_SCHEMES, is_stdin, is_url, redacted, unknown_scheme

__all__ = ["check_nameable", "check_no_empty_path", "check_not_empty", "check_pairs_folder", "expand_inputs",
           "make_folder", "new_folders_removed_if_empty", "check_distinct_outputs", "check_outputs_apart", "default_outputs", "warn_of_subfolders", "VIDEO_SUFFIXES",
           "IMAGE_EXTENSIONS", "DEFAULT_TAG"]

DEFAULT_TAG = "-deblurred"  # what an output named by default adds to its input's name


def check_not_empty(paths: Sequence[str | Path], what: str, instead: str, *,
                    error: type[VideoDeblurError] = InputNotFoundError) -> None:
    """Refuse an empty path (an unset shell variable): pathlib reads "" as ".", so `image "$SHOT"`
    deblurred the whole current folder and `video in.mp4 -o "$OUT"` wrote into it. ``what``: the
    argument ("an input", "--pairs"); ``instead``: what to give."""
    if any(str(path) == "" for path in paths):
        raise error(f"{what} is an empty path (an unset variable?): {instead}")


def check_no_empty_path(inputs: Sequence[str | Path], output: str | Path | None, *, inputs_are: str) -> None:
    """:func:`check_not_empty` of a command's inputs and output; ``inputs_are``: what to name instead
    ("image files or a folder")."""
    check_not_empty(inputs, "an input", f"name {inputs_are}")
    check_not_empty([] if output is None else [output], "the output",
                    "name a file or a folder, or leave -o out to write beside each input", error=OutputError)


def check_nameable(path: str | Path, error: type[VideoDeblurError], message: str) -> None:
    """``error`` (``message`` naming the path) for a path no file can have: a NUL byte in it, or a
    name longer than the file system allows; the OS would raise a bare ValueError or OSError later."""
    text = os.fspath(path)
    if "\0" in str(text):
        raise error(f"{message.format(repr(str(text)))}: a path cannot hold a NUL byte")
    try:
        os.stat(text)
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise error(f"{message.format(text)}: {err.strerror} (a name in the path is longer than the file "
                        "system allows)") from err


def check_pairs_folder(root: str | Path) -> Path:
    """``root`` as the folder of blurred/sharp pairs (``eval --pairs``, a recipe's ``pairs``): an error for
    a file or nothing there, said by ``eval`` before torch loads and by the pairs' reader for the library's
    callers."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise UnreadableInputError(f"pairs {root} is a file, not a folder: give the folder that holds "
                                   "<scene>/blur/*.png and <scene>/sharp/*.png")
    if not root.is_dir():
        raise InputNotFoundError(f"pairs folder not found: {root}")
    return root


# containers, then camcorder and pro formats (DV tapes, DVD VOBs, MXF), then raw streams (dashcams)
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                  ".wmv", ".flv", ".3gp", ".dv", ".vob", ".mod", ".tod", ".mxf", ".h264", ".264", ".hevc", ".h265",
                  ".265")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".avif", ".bmp")  # what `image` reads and writes


def expand_inputs(inputs: Sequence[str | Path], suffixes: Sequence[str], what: str, *,
                  urls: bool = False) -> tuple[list[str], bool]:
    """Each input as given, a folder replaced by its files with ``suffixes`` (any case, one level
    deep, in name order; hidden ones left out: a folder copied from a Mac holds a ``._name`` beside
    each file, which is no picture or video), URLs kept as they are when ``urls``. Returns (sources,
    whether any input was a folder). InputNotFoundError for a missing input, UnreadableInputError for
    a folder without ``what``."""
    sources: list[str] = []
    any_folder = False
    for raw in map(str, inputs):
        if urls and is_url(raw):
            sources.append(raw)
            continue
        path = Path(raw)
        if not path.exists() and (scheme := unknown_scheme(raw) or (is_url(raw) and raw.partition("://")[0])):
            # read as a path, "ftp://host/x" was "input not found: ftp:/host/x"
            takes = f", or a URL ({', '.join(URL_SCHEMES)})" if urls else ""
            raise InputNotFoundError(f"input {redacted(raw)}: {scheme}:// is not read here: give a file or a "
                                     f"folder{takes}")
        if not path.exists():
            raise InputNotFoundError(f"input not found: {path}")
        if path.is_dir():
            any_folder = True
            found = sorted(p for p in path.iterdir()
                           if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith("."))
            if not found:
                raise UnreadableInputError(f"no {what} in folder {path}")
            sources.extend(map(str, found))
        else:
            sources.append(raw)
    return sources, any_folder


def make_folder(folder: Path, *, file_suffixes: Sequence[str] = ()) -> None:
    """Create ``folder`` (and its parents) or say why not (OutputError). A new folder named like a
    file (``out.mp4`` where several inputs need a folder) is refused: it is a mistake, not a name."""
    if not folder.exists() and folder.suffix.lower() in file_suffixes:
        raise OutputError(f"several inputs (or a folder) go into an output folder, but {folder} names a file; "
                          "give a folder path")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output {folder} is a file, but a folder is needed here; choose a folder path")
    missing = [f for f in (folder, *folder.parents) if not f.exists()] if _made.get() is not None else []
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create output folder {folder}: {err.strerror or err}") from err
    made = _made.get()
    if made is not None:
        made.extend(reversed(missing))  # outermost first, so the innermost is removed first


_made: ContextVar[list[Path] | None] = ContextVar("made_folders", default=None)


@contextmanager
def new_folders_removed_if_empty() -> Iterator[None]:
    """Folders :func:`make_folder` creates in this block (planning makes them, so that a path that cannot
    be one fails before the model loads) are removed at its end while still empty: a run that wrote
    nothing (a bad --model after planning, every input unreadable) leaves nothing behind. One that
    holds a file, or that was there before, stays."""
    made: list[Path] = []
    token = _made.set(made)
    try:
        yield
    finally:
        _made.reset(token)
        for folder in reversed(made):
            try:
                folder.rmdir()  # only an empty folder; one with outputs in it stays
            except OSError:
                pass


def check_distinct_outputs(pairs: Sequence[tuple[str | Path, Path]]) -> None:
    """OutputError if two sources would be written to one output."""
    seen: dict[Path, str | Path] = {}
    for src, dst in pairs:
        if dst in seen:
            raise OutputError(f"two inputs would both be written to {dst} ({seen[dst]} and {src}); "
                              "rename one or run them separately")
        seen[dst] = src


def check_outputs_apart(pairs: Sequence[tuple[str | Path, Path]]) -> None:
    """OutputError if an output is an input of the run, its own or another's (``video a.mp4
    a-deblurred.mp4`` wrote over the second input before reading it): the same path, or the same
    file through a symbolic or hard link, as :func:`videodeblur.video.outputs.check_output_path`
    tells them. URLs and standard input are no files to overwrite."""
    inputs = {_identity(Path(src)): src for src, _ in pairs if not is_url(src) and not is_stdin(src)}
    for src, dst in pairs:
        if (other := inputs.get(key := _identity(dst))) is None:
            continue
        if _identity(Path(src)) == key:
            raise OutputError(f"output {dst} is the input file {src}; choose another output path")
        named = "" if Path(other) == dst else f" (as {other})"
        raise OutputError(f"output {dst} of {src} is also an input of this run{named}: it would be written over "
                          "before it is read; rename it or choose another output")


def _identity(path: Path) -> object:
    """What makes two paths one file: the device and inode of one that exists (a hard link shares
    them; a symbolic link is followed), else the path with its links resolved."""
    try:
        info = path.stat()
        return info.st_dev, info.st_ino
    except OSError:
        return path.resolve()


def default_outputs(inputs: Sequence[str | Path], suffixes: Sequence[str], what: str, *,
                    name: Callable[[str], str], urls: bool = False) -> list[tuple[str, Path]]:
    """Each input paired with the output written when none is named: a file beside itself as
    ``<stem>-deblurred<suffix>`` (``name`` gives the output's file name for a source, for the
    suffix), a folder's files into ``<folder>-deblurred/`` (created) under their own names (files
    already named ``*-deblurred.*`` are outputs, left out), a URL's into the current folder.
    Nothing is ever written over its input this way."""
    pairs: list[tuple[str, Path]] = []
    for raw in map(str, inputs):
        found, is_folder = expand_inputs([raw], suffixes, what, urls=urls)
        if is_folder:
            folder = Path(raw).resolve()  # "." has no name of its own
            # a file named like a default output is one (an earlier run's, beside its input): not an input
            found = [src for src in found if not Path(src).stem.endswith(DEFAULT_TAG)]
            if not found:
                raise UnreadableInputError(f"no {what} in folder {raw} but earlier outputs (*{DEFAULT_TAG}.*), which "
                                           "are not deblurred again: name one as an input to deblur it again")
            target = folder.parent / f"{folder.name}{DEFAULT_TAG}"
            make_folder(target)
            pairs.extend((src, target / name(src)) for src in found)
            continue
        out = Path(name(raw))
        tagged = out.with_name(f"{out.stem}{DEFAULT_TAG}{out.suffix}")
        pairs.append((raw, tagged if is_url(raw) else Path(raw).with_name(tagged.name)))
    return pairs


def warn_of_subfolders(inputs: Sequence[str | Path], outputs: Sequence[Path], suffixes: Sequence[str], noun: str,
                       warn: Warn) -> None:
    """Tell ``warn`` how many ``noun`` files (``suffixes``) each input folder holds in sub-folders: they
    are left out (folders are read one level deep), and a user who gave a folder of folders would
    otherwise find a finished run with fewer outputs and no word why. Sub-folders given as inputs of
    their own, and the run's output folders, are not counted."""
    given = list(dict.fromkeys(Path(raw) for raw in map(str, inputs) if not is_url(raw) and not is_stdin(raw)))
    for folder in given:
        if not folder.is_dir():
            continue
        skip = {Path(dst).parent for dst in outputs} | (set(given) - {folder})
        left_out = _files_in_subfolders(folder, suffixes, skip=skip)
        if left_out:
            warn(f"{folder}: {left_out} {noun}{'s' if left_out > 1 else ''} in sub-folders left out (folders are read "
                 f"one level deep; give a sub-folder as an input of its own to deblur its {noun}s)")


def _files_in_subfolders(folder: Path, suffixes: Sequence[str], *, skip: set[Path]) -> int:
    """Files with ``suffixes`` below ``folder``'s sub-folders (any depth; symbolic links not followed),
    not counting those in ``skip`` (an output folder inside the input)."""
    skipped = {_identity(p) for p in skip if p.exists()}
    count = 0
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if _identity(Path(parent) / d) not in skipped]
        if Path(parent) != folder:
            count += sum(Path(name).suffix.lower() in suffixes for name in files)
    return count
