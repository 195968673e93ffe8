"""The library facade, ``Deblurrer``, as a program that embeds it uses it: its options, cancelling,
typed errors for bad values, threads, and where its warnings point."""
from __future__ import annotations

import os
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from videodeblur import Deblurrer, errors
from videodeblur.errors import ConfigError, FrameError, InputNotFoundError, OutputError
from videodeblur.pipeline import Engine

from _clips_video import decode


@pytest.fixture(scope="module")
def deblurrer() -> Deblurrer:
    return Deblurrer("lprn-fast", device="cpu")


@pytest.mark.parametrize("link", ["same", "hard", "symbolic"])
def test_image_never_writes_over_its_source(deblurrer: Deblurrer, make_image, tmp_path: Path, link: str) -> None:
    src = make_image("in.png", width=16, height=16)
    dst = src if link == "same" else tmp_path / "other.png"
    if link != "same":
        (os.link if link == "hard" else os.symlink)(src, dst)
    before = src.read_bytes()
    with pytest.raises(OutputError, match="is the input file"):
        deblurrer.image(src, dst)
    assert src.read_bytes() == before


def test_image_into_a_folder_takes_the_inputs_name(deblurrer: Deblurrer, make_image, tmp_path: Path) -> None:
    """``image(src, folder)`` said "unsupported output extension '(none)'", where ``videodeblur image
    -o FOLDER`` writes FOLDER/<name>."""
    src = make_image("in.png", width=24, height=16)
    (tmp_path / "out").mkdir()
    written = deblurrer.image(src, tmp_path / "out")
    assert written == tmp_path / "out" / "in.png"
    assert written.is_file() and written.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_frames_of_different_sizes_in_one_list_are_a_frame_error(deblurrer: Deblurrer) -> None:
    """A ragged list reached numpy's "inhomogeneous shape" ValueError, not the API's typed error."""
    with pytest.raises(FrameError, match="must all have one size"):
        deblurrer.frames([np.zeros((8, 8, 3), np.uint8), np.zeros((8, 10, 3), np.uint8)])


@pytest.mark.parametrize("frames", [np.zeros((37, 53, 3), np.uint16), np.zeros((2, 37, 53, 1), np.uint8),
                                    np.zeros((37, 53), np.uint8)], ids=["uint16", "grey-batch", "2-d"])
def test_wrong_frames_are_named_as_they_were_given(deblurrer: Deblurrer, frames: np.ndarray) -> None:
    """A uint16 H×W×3 frame was said to be "uint16 (1, 37, 53, 3)", with the axis the API adds."""
    with pytest.raises(FrameError, match=rf"^frames must be uint8 RGB, H×W×3 or N×H×W×3, got {frames.dtype} "
                                         rf"\({', '.join(map(str, frames.shape))}\)$"):
        deblurrer.frames(frames)


def test_frames_of_any_size_and_layout_keep_their_shape_and_pixels(deblurrer: Deblurrer) -> None:
    """1×1, 3×5 and 1921×1081 (odd against lprn-fast's ×4 unshuffle) come back at their own size; a view
    with strides (every other column, a BGR→RGB flip, a Fortran-order copy) is deblurred as its copy is."""
    rng = np.random.default_rng(0)
    for shape in [(1, 1, 3), (3, 5, 3), (1081, 1921, 3), (2, 7, 9, 3)]:
        frames = rng.integers(0, 256, shape, dtype=np.uint8)
        out = deblurrer.frames(frames)
        assert (out.shape, out.dtype) == (shape, np.uint8)
    wide = rng.integers(0, 256, (33, 70, 3), dtype=np.uint8)
    for view in (wide[:, ::2], wide[:, ::-1, ::-1], np.asfortranarray(wide)):
        assert np.array_equal(deblurrer.frames(view), deblurrer.frames(np.ascontiguousarray(view)))


@pytest.mark.parametrize("shape, order", [((3, 12, 20), "1, 2, 0"), ((2, 3, 12, 20), "0, 2, 3, 1")])
def test_channels_first_frames_are_told_how_to_put_the_channels_last(deblurrer: Deblurrer, shape: tuple[int, ...],
                                                                     order: str) -> None:
    """torch's own layout, N×3×H×W, was only "got uint8 (2, 3, 12, 20)": the fix is one call, so name it."""
    given = ", ".join(map(str, shape))
    with pytest.raises(FrameError, match=rf"^frames must be uint8 RGB, H×W×3 or N×H×W×3, got uint8 \({given}\) "
                                         rf"\(channels first\? put them last: \.permute\({order}\) for a tensor, "
                                         rf"\.transpose\({order}\) for an array\)$"):
        deblurrer.frames(torch.zeros(shape, dtype=torch.uint8))
    assert deblurrer.frames(torch.zeros(shape, dtype=torch.uint8).permute(*map(int, order.split(", ")))).shape[-1] == 3


def test_every_engine_option_passes_through_and_threads_are_the_callers_to_choose() -> None:
    threads = torch.get_num_threads()
    try:
        d = Deblurrer("lprn-fast", device="cpu", threads=1, memory_budget=10**9, tile_overlap=48)
        assert (d.options.threads, d.options.memory_budget, d.options.tile_overlap) == (1, 10**9, 48)
        assert d.engine.options is d.options and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    assert "threads" in (Deblurrer.__doc__ or "")
    with pytest.raises(ConfigError, match="unknown Deblurrer option.* thread\\b"):
        Deblurrer(device="cpu", thread=1)


@pytest.mark.parametrize("kwargs", [{"device": None}, {"batch_size": "2"}, {"tile": "256"}, {"threads": 1.5},
                                    {"precision": 16}, {"batch_size": True}])
def test_values_of_the_wrong_type_are_config_errors(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="must be"):
        Deblurrer("lprn-fast", **kwargs)


def test_file_can_be_stopped_and_a_stop_before_the_start_writes_nothing(deblurrer: Deblurrer, make_clip,
                                                                        tmp_path: Path) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=40)  # more than the bounded queues hold ahead
    stop = threading.Event()

    def progress(done: int, total: int | None) -> None:
        if done == 3:
            stop.set()
    stats = deblurrer.file(src, tmp_path / "out.mp4", progress=progress, stop=stop)
    assert stats.extra["stopped_early"] is True and 3 <= stats.frames < 40
    assert len(decode(tmp_path / "out.mp4").frames) == stats.frames
    stats = deblurrer.file(src, tmp_path / "none.mp4", stop=stop)  # already set
    assert (stats.frames, stats.extra["stopped_early"]) == (0, True) and not (tmp_path / "none.mp4").exists()
    stats = deblurrer.file(src, tmp_path / "five.mp4", max_frames=5)
    assert stats.frames == 5 and len(decode(tmp_path / "five.mp4").frames) == 5


def test_a_progress_callback_cancelling_with_keyboard_interrupt_gets_the_runs_stats(deblurrer: Deblurrer, make_clip,
                                                                                   tmp_path: Path) -> None:
    """A GUI's cancel button raising KeyboardInterrupt in the callback: the caller gets RunInterrupted
    with what was written, as for Ctrl-C (it got a bare KeyboardInterrupt, no stats)."""
    from videodeblur.pipeline import RunInterrupted

    src = make_clip("a.mp4", width=64, height=48, frames=40)

    def cancel(done: int, total: int | None) -> None:
        if done == 4:
            raise KeyboardInterrupt
    with pytest.raises(RunInterrupted) as caught:
        deblurrer.file(src, tmp_path / "out.mp4", progress=cancel)
    assert 4 <= caught.value.stats.frames < 40
    assert len(decode(tmp_path / "out.mp4").frames) == caught.value.stats.frames


@pytest.mark.parametrize("kwargs, message", [({"max_frames": "5"}, "max_frames must be a whole number >= 1, got '5'"),
                                             ({"progress": 5}, "progress must be a function"),
                                             # a string was true (side by side written), stop failed in the reader
                                             ({"side_by_side": "no"}, "side_by_side must be True or False, got 'no'"),
                                             ({"resume": "false"}, "resume must be True or False"),
                                             ({"deinterlace": 0}, "deinterlace must be True or False"),
                                             ({"stop": True}, "stop must be a threading.Event")])
def test_file_arguments_of_the_wrong_type_are_refused_before_a_file_is_made(deblurrer: Deblurrer, make_clip,
                                                                            tmp_path: Path, kwargs: dict,
                                                                            message: str) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=4)
    with pytest.raises(ConfigError, match=message):
        deblurrer.file(src, tmp_path / "out.mp4", **kwargs)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("kwargs", [{"start_s": float("nan")}, {"duration_s": float("nan")},
                                    {"duration_s": float("inf")}])
def test_non_finite_times_are_refused_before_anything_is_written(deblurrer: Deblurrer, make_clip, tmp_path: Path,
                                                                  kwargs: dict) -> None:
    src = make_clip("a.mp4", width=64, height=48, frames=4)
    with pytest.raises(ConfigError, match="must be a finite number of seconds"):
        deblurrer.file(src, tmp_path / "out.mp4", **kwargs)
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("method", ["file", "image"])
@pytest.mark.parametrize("which", ["src", "dst"])
@pytest.mark.parametrize("bad", ["long", "nul"])
def test_paths_no_file_can_have_are_typed_one_line_errors(deblurrer: Deblurrer, make_clip, make_image,
                                                          tmp_path: Path, method: str, which: str, bad: str) -> None:
    good_src = make_clip("a.mp4", width=64, height=48, frames=2) if method == "file" else \
        make_image("a.png", width=16, height=16)
    suffix = good_src.suffix
    wrong = str(tmp_path / ("x" * 300 + suffix)) if bad == "long" else str(tmp_path / f"a\0b{suffix}")
    src, dst = (wrong, tmp_path / f"out{suffix}") if which == "src" else (good_src, wrong)
    with pytest.raises(InputNotFoundError if which == "src" else OutputError) as caught:
        getattr(deblurrer, method)(src, dst)
    assert "\n" not in str(caught.value) and ("NUL" if bad == "nul" else "too long") in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == [good_src.name]  # nothing written


def test_concurrent_first_calls_build_one_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []

    def slow_build(cls: type, name: str | None = None, options: object = None) -> object:
        time.sleep(0.05)  # long enough for every thread to find no engine yet
        built.append(object())
        return built[-1]

    monkeypatch.setattr(Engine, "from_name", classmethod(slow_build))
    d = Deblurrer("lprn-fast", device="cpu")
    with ThreadPoolExecutor(4) as pool:
        engines = list(pool.map(lambda _: d.engine, range(8)))
    assert len(built) == 1 and all(e is built[0] for e in engines)


def test_image_warnings_point_at_the_caller_or_go_to_warn(deblurrer: Deblurrer, make_image, tmp_path: Path) -> None:
    src = make_image("rgba.png", width=16, height=16, mode="rgba")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deblurrer.image(src, tmp_path / "out.jpg")  # a JPEG has no alpha: a warning, at this line
    assert [(w.category, w.filename) for w in caught] == [(UserWarning, __file__)]
    assert caught[0].lineno == test_image_warnings_point_at_the_caller_or_go_to_warn.__code__.co_firstlineno + 4
    said: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deblurrer.image(src, tmp_path / "out2.jpg", warn=said.append)
    assert caught == [] and len(said) == 1 and "cannot hold the alpha channel" in said[0]


def test_file_warnings_go_to_warn(deblurrer: Deblurrer, make_clip, tmp_path: Path) -> None:
    src = make_clip("odd.mp4", width=33, height=25, frames=2)  # odd-sized: 4:4:4 H.264, which browsers do not play
    said: list[str] = []
    stats = deblurrer.file(src, tmp_path / "out.mp4", warn=said.append)
    assert said == list(stats.warnings) and any("4:4:4" in line for line in said)


_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")


@pytest.mark.parametrize("model, kwargs, error, message", [
    ("lprn-fats", {}, "ModelNotFoundError", "unknown model 'lprn-fats' \\(did you mean lprn-fast\\?\\)"),
    (Path("no/such/weights.pt"), {}, "InputNotFoundError", "weights file not found: no/such/weights.pt$"),
    ("x" * 300, {}, "InputNotFoundError", "longer than the file system allows"),  # was a bare OSError
    ("", {}, "ModelNotFoundError", "no model given"),
    (3, {}, "ConfigError", "^model must be a shipped name, a weights path or None, got 3$"),  # was the name '3'
    ("lprn-fast", {"device": "cpu", "precision": "fp16"}, "DeviceError", "fp16 needs a CUDA device"),
    pytest.param("lprn-fast", {"device": "cuda"}, "DeviceError", "CUDA is not available", marks=_NO_CUDA),
], ids=["misspelt", "missing-path", "long-name", "empty", "int", "fp16-on-cpu", "cuda"])
def test_models_and_devices_that_cannot_work_are_refused_when_made(model: object, kwargs: dict, error: str,
                                                                   message: str) -> None:
    """They were only reported by the first file or frames call, possibly minutes later in a worker
    thread; none of these checks reads any weights."""
    with pytest.raises(getattr(errors, error), match=message):
        Deblurrer(model, **kwargs)


def test_shipped_names_and_weights_files_are_taken_as_given(tmp_path: Path) -> None:
    import shutil

    from videodeblur.model.registry import shipped_weights_path

    assert Deblurrer("LPRN-Fast", device="cpu").model == "LPRN-Fast"  # a shipped name in any case
    weights = Path(shutil.copy(shipped_weights_path("lprn-fast"), tmp_path / "mine.pt"))
    d = Deblurrer(weights, device="cpu")
    assert d.model == str(weights) and d.engine.model_name == "mine"


def test_frames_from_torch_tensors_work_or_are_frame_errors(deblurrer: Deblurrer) -> None:
    """A uint8 tensor is taken as its array; a float tensor that requires grad, a bf16 one or one
    on another device reached torch's own RuntimeError or TypeError."""
    frame = np.random.default_rng(1).integers(0, 256, (12, 20, 3), dtype=np.uint8)
    assert np.array_equal(deblurrer.frames(torch.from_numpy(frame).flip(1)), deblurrer.frames(frame[:, ::-1]))
    for tensor, dtype in [(torch.zeros(12, 20, 3, requires_grad=True), "torch.float32"),
                          (torch.zeros(12, 20, 3, dtype=torch.bfloat16), "torch.bfloat16")]:
        with pytest.raises(FrameError, match=rf"^frames must be uint8 RGB, H×W×3 or N×H×W×3, got {dtype} "
                                             r"\(12, 20, 3\)$"):
            deblurrer.frames(tensor)
    with pytest.raises(FrameError, match="^frames must be uint8 RGB, H×W×3 or N×H×W×3: a Tensor on meta cannot be "
                                         "copied to the host"):
        deblurrer.frames(torch.zeros(12, 20, 3, dtype=torch.uint8, device="meta"))
    with pytest.raises(FrameError, match="^frames must be uint8 RGB, H×W×3 or N×H×W×3: a list cannot be read as an "
                                         "array \\(.*meta"):
        deblurrer.frames([torch.zeros(12, 20, 3, dtype=torch.uint8, device="meta")])


@pytest.mark.parametrize("frames, given", [(np.zeros((37, 0, 3), np.uint8), "shape (37, 0, 3)"),
                                           (np.zeros((0, 37, 53, 3), np.uint8), "shape (0, 37, 53, 3)"),
                                           ([], "an empty list")])
def test_frames_with_nothing_in_them_are_named_as_they_were_given(deblurrer: Deblurrer, frames: object,
                                                                  given: str) -> None:
    """A 37×0×3 frame was said to be of shape (1, 37, 0, 3), and an empty list "float64 (0,)"."""
    with pytest.raises(FrameError, match=rf"^frames must hold at least one frame of at least 1×1 pixels, got "
                                         rf"{given.replace('(', '[(]').replace(')', '[)]')}$"):
        deblurrer.frames(frames)


@pytest.mark.parametrize("method", ["file", "image"])
def test_a_warn_that_is_no_function_is_refused_before_a_file_is_made(deblurrer: Deblurrer, make_clip, make_image,
                                                                      tmp_path: Path, method: str) -> None:
    """It was called only once the output was written, with a TypeError ('int' object is not callable)."""
    src = make_clip("odd.mp4", width=33, height=25, frames=2) if method == "file" else \
        make_image("rgba.png", width=16, height=16, mode="rgba")  # each warns: 4:4:4 H.264, alpha in a JPEG
    dst = tmp_path / ("out.mp4" if method == "file" else "out.jpg")
    with pytest.raises(ConfigError, match="^warn must be a function taking one line, got 3$"):
        getattr(deblurrer, method)(src, dst, warn=3)
    assert not dst.exists()


@pytest.mark.parametrize("method", ["file", "image"])
@pytest.mark.parametrize("which", ["src", "dst"])
@pytest.mark.parametrize("bad", [None, 3, b"bytes.png"], ids=["None", "int", "bytes"])
def test_paths_of_the_wrong_type_are_config_errors(deblurrer: Deblurrer, make_clip, make_image, tmp_path: Path,
                                                   method: str, which: str, bad: object) -> None:
    """They reached os.fspath's or pathlib's TypeError."""
    good_src = make_clip("a.mp4", width=64, height=48, frames=2) if method == "file" else \
        make_image("a.png", width=16, height=16)
    src, dst = (bad, tmp_path / f"out{good_src.suffix}") if which == "src" else (good_src, bad)
    with pytest.raises(ConfigError, match=rf"^{which} must be a path \(str or os.PathLike\), got {bad!r}$"):
        getattr(deblurrer, method)(src, dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == [good_src.name]
