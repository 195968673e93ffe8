"""Blur synthesis: kernels are normalised, blur happens in linear light, frame averaging, noise, pairs."""
from __future__ import annotations

import numpy as np
import pytest

from videodeblur.train.data import Scene, SynthesisedPairs, SynthesisMix, StepSampler
from videodeblur.train.synthesis import (add_sensor_noise, apply_kernel, average_frames, linear_to_srgb,
                                         shake_kernel, srgb_to_linear)


@pytest.mark.parametrize("seed", range(5))
def test_shake_kernel_is_normalised_non_negative_and_centred(seed: int) -> None:
    k = shake_kernel(np.random.default_rng(seed), 21)
    assert k.shape == (21, 21)
    assert k.min() >= 0
    assert k.sum() == pytest.approx(1.0, abs=1e-5)
    ys, xs = np.mgrid[0:21, 0:21]
    assert (k * xs).sum() == pytest.approx(10, abs=1.0)
    assert (k * ys).sum() == pytest.approx(10, abs=1.0)


def test_srgb_round_trip() -> None:
    x = np.linspace(0, 1, 101, dtype=np.float32)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-5)


def test_blur_happens_in_linear_light() -> None:
    """Half black, half white blurred into one grey: linear-light mean 0.5 is sRGB ≈ 0.735, not 0.5."""
    frames = np.zeros((2, 4, 4, 3), np.float32)
    frames[1] = 1.0
    assert average_frames(frames)[0, 0, 0] == pytest.approx(0.7354, abs=1e-3)
    image = np.zeros((9, 9, 3), np.float32)
    image[:, 5:] = 1.0
    kernel = np.zeros((3, 3), np.float32)
    kernel[1, 0] = kernel[1, 2] = 0.5  # horizontal 2-tap box
    out = apply_kernel(image, kernel)
    assert out[4, 4, 0] == pytest.approx(0.7354, abs=1e-3)  # one neighbour black, one white


def test_kernel_blur_keeps_flat_images_flat() -> None:
    image = np.full((32, 32, 3), 0.3, np.float32)
    out = apply_kernel(image, shake_kernel(np.random.default_rng(0), 15))
    np.testing.assert_allclose(out, image, atol=1e-5)


def test_sensor_noise_is_zero_mean_in_linear_light() -> None:
    image = np.full((128, 128, 3), 0.5, np.float32)
    noisy = add_sensor_noise(image, np.random.default_rng(0), photons=1000, read_sigma=0.005)
    assert noisy.std() > 0.005
    assert srgb_to_linear(noisy).mean() == pytest.approx(srgb_to_linear(image).mean(), abs=2e-3)


def _dataset(**mix) -> SynthesisedPairs:
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (12, 40, 48, 3), dtype=np.uint8)
    stills = [rng.integers(0, 256, (50, 60, 3), dtype=np.uint8)]
    return SynthesisedPairs([Scene("x", 0, frames)], stills, SynthesisMix(crop=32, kernel_sizes=(5, 7), exposures=(3, 5), **mix), seed=3)


def test_pairs_are_deterministic_per_index_and_shaped() -> None:
    a, b = _dataset(), _dataset()
    for i in range(6):
        (ba, sa), (bb, sb) = a[i], b[i]
        assert ba.shape == sa.shape == (3, 32, 32)
        assert ba.dtype == sa.dtype
        assert float(ba.min()) >= 0 and float(ba.max()) <= 1
        assert np.array_equal(ba.numpy(), bb.numpy()) and np.array_equal(sa.numpy(), sb.numpy())


def test_sharp_pairs_are_identical_and_blurred_pairs_differ() -> None:
    sharp = _dataset(p_average=0.0, p_sharp=1.0)
    blurred = _dataset(p_average=1.0, p_sharp=0.0, p_noise=0.0, p_jpeg=0.0)
    for i in range(4):
        x, y = sharp[i]
        assert np.array_equal(x.numpy(), y.numpy())
        x, y = blurred[i]
        assert np.abs(x.numpy() - y.numpy()).mean() > 0.01


def test_step_sampler_splits_ranks_and_resumes() -> None:
    full = list(StepSampler(batch=2, start_step=0, total_steps=4))
    resumed = list(StepSampler(batch=2, start_step=2, total_steps=4))
    assert full[4:] == resumed
    rank0 = list(StepSampler(batch=2, start_step=0, total_steps=3, rank=0, world=2))
    rank1 = list(StepSampler(batch=2, start_step=0, total_steps=3, rank=1, world=2))
    assert not set(rank0) & set(rank1)
    assert len(rank0) == len(rank1) == 6


def test_gopro_blur_of_a_static_scene_changes_nothing_and_of_motion_blurs() -> None:
    from videodeblur.train.synthesis import gopro_blur

    rng = np.random.default_rng(0)
    base = (rng.random((48, 64, 3)) * 255).astype(np.uint8)
    base = np.ascontiguousarray(np.repeat(np.repeat(base[::4, ::4], 4, 0), 4, 1))  # blocky texture
    still = gopro_blur(base, base, base, exposure=9)
    np.testing.assert_allclose(still, base / 255.0, atol=2e-3)
    moved = [np.roll(base, s, axis=1) for s in (-4, 0, 4)]  # 4 px per frame to the right
    blurred = gopro_blur(*moved, exposure=17)
    assert np.abs(blurred - base / 255.0).mean() > 0.02
    with pytest.raises(ValueError):
        gopro_blur(base, base, base, exposure=19)


def test_rendered_gopro_pairs_are_cached_and_reloaded_identically(tmp_path) -> None:
    from videodeblur.train.data import render_gopro_pairs

    rng = np.random.default_rng(0)
    scenes = [Scene("a", 0, rng.integers(0, 255, (4, 32, 40, 3), dtype=np.uint8)),
              Scene("b", 0, rng.integers(0, 255, (3, 24, 30, 3), dtype=np.uint8))]  # mixed sizes
    first = render_gopro_pairs(scenes, (9, 13), cache_dir=tmp_path)
    assert len(first) == (2 + 1) * 2
    assert len(list(tmp_path.glob("gopro-*.npz"))) == 1
    again = render_gopro_pairs(scenes, (9, 13), cache_dir=tmp_path)
    for (b1, s1), (b2, s2) in zip(first, again, strict=True):
        assert np.array_equal(b1, b2) and np.array_equal(s1, s2)
