"""Blur synthesis: kernels are normalised, blur happens in linear light, frame averaging, noise, pairs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from videodeblur.errors import ConfigError, UnreadableInputError
from videodeblur.train.data import Scene, SynthesisedPairs, SynthesisMix, StepSampler, read_video_scenes
from videodeblur.train.synthesis import (Motion, add_sensor_noise, apply_kernel, average_frames, defocus_kernel, recolour,
                                         h264_roundtrip, linear_to_srgb, moving_object, random_motion,
                                         render_motion_blur, shake_kernel, srgb_to_linear)

from conftest import psnr


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


def test_h264_round_trip_degrades_like_video_and_keeps_odd_sizes() -> None:
    ys, xs = np.mgrid[0:45, 0:61].astype(np.float32)
    image = np.stack([0.5 + 0.4 * np.sin(xs / 3), 0.5 + 0.4 * np.cos(ys / 4), (xs + ys) / 110], axis=-1)
    fine, coarse = h264_roundtrip(image, 18), h264_roundtrip(image, 40)
    assert fine.shape == coarse.shape == image.shape and fine.dtype == np.float32
    assert 0.0 <= float(fine.min()) and float(fine.max()) <= 1.0
    assert 30 < psnr(fine, image, peak=1.0) < 60  # close, not lossless: 4:2:0 and quantisation
    assert psnr(coarse, image, peak=1.0) < psnr(fine, image, peak=1.0) - 3


def test_h264_pairs_are_drawn_only_when_asked() -> None:
    plain, off = _dataset(p_noise=0.0, p_jpeg=0.0), _dataset(p_noise=0.0, p_jpeg=0.0, p_h264=0.0)
    for i in range(4):  # an older recipe (no p_h264) draws exactly the pairs it drew before
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(plain[i], off[i]))
    coded = _dataset(p_average=0.0, p_sharp=0.0, p_noise=0.0, p_jpeg=0.0, p_h264=1.0, h264_crf=(30, 31))
    clean = _dataset(p_average=0.0, p_sharp=0.0, p_noise=0.0, p_jpeg=0.0)
    compared = 0
    for i in range(6):
        (bc, sc), (bp, sp) = coded[i], clean[i]
        if np.array_equal(sc.numpy(), sp.numpy()):  # the extra draw may flip a pair differently: skip those
            compared += 1  # same target, compressed input
            assert not np.array_equal(bc.numpy(), bp.numpy())
    assert compared > 0


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


def test_the_pairs_cache_is_keyed_by_the_frames_not_the_clips_name(tmp_path) -> None:
    """A clip replaced under the same name (same length and size) got the old clip's pairs from the
    cache, and trained on them without a word; a cache file cut short stopped training with
    "internal error: BadZipFile". Now other frames are other pairs, and a bad file is rendered anew."""
    from videodeblur.train.data import render_gopro_pairs

    rng = np.random.default_rng(0)
    before = [Scene("clip.mp4", 0, rng.integers(0, 255, (3, 24, 30, 3), dtype=np.uint8))]
    after = [Scene("clip.mp4", 0, rng.integers(0, 255, (3, 24, 30, 3), dtype=np.uint8))]
    old = render_gopro_pairs(before, (9,), cache_dir=tmp_path)
    new = render_gopro_pairs(after, (9,), cache_dir=tmp_path)
    assert np.array_equal(new[0][1], after[0].frames[1]) and not np.array_equal(new[0][0], old[0][0])
    assert len(list(tmp_path.glob("gopro-*.npz"))) == 2
    for cached in tmp_path.glob("gopro-*.npz"):
        cached.write_bytes(cached.read_bytes()[:200])  # cut short
    again = render_gopro_pairs(after, (9,), cache_dir=tmp_path)
    assert all(np.array_equal(a, b) for pair, fresh in zip(again, new) for a, b in zip(pair, fresh))
    assert render_gopro_pairs(after, (9,), cache_dir=tmp_path)[0][0].shape == (24, 30, 3)  # rewritten whole
    assert not list(tmp_path.glob("*.tmp.npz"))


def _edges(size: int = 96) -> np.ndarray:
    """Dark top half, bright bottom half: a horizontal edge (constant along x)."""
    image = np.full((size, size, 3), 0.1, np.float32)
    image[size // 2:] = 0.9
    return image


def test_motion_blur_without_motion_is_the_identity() -> None:
    image = np.random.default_rng(0).random((40, 50, 3)).astype(np.float32)
    blurred, sharp = render_motion_blur(image, Motion(), exposure=9)
    np.testing.assert_allclose(sharp, image, atol=1e-5)
    np.testing.assert_allclose(blurred, image, atol=1e-5)


def test_motion_blur_smears_only_along_the_motion_and_in_linear_light() -> None:
    image = _edges()
    along, sharp = render_motion_blur(image, Motion(shift=(12.0, 0.0)), exposure=17)
    np.testing.assert_allclose(along, image, atol=1e-5)  # a pan along the edge changes nothing
    np.testing.assert_allclose(sharp, image, atol=1e-5)
    across, _ = render_motion_blur(image, Motion(shift=(0.0, 12.0)), exposure=17)
    column = across[:, 48, 0]
    assert np.abs(across - image).max() > 0.3  # the edge is smeared over about 24 rows
    assert np.all(np.diff(column[30:66]) >= -1e-6)  # monotonic ramp, no ringing
    # the middle of the ramp is the mean in linear light, brighter than the sRGB mean (0.5)
    middle = float(column[48])
    expected = float(linear_to_srgb(np.float32((srgb_to_linear(np.float32(0.1)) + srgb_to_linear(np.float32(0.9))) / 2)))
    assert abs(middle - expected) < 0.05 and middle > 0.6


def test_moving_object_blurs_its_path_and_leaves_the_rest_alone() -> None:
    rng = np.random.default_rng(1)
    background = np.full((96, 96, 3), 0.5, np.float32)
    texture = np.full((64, 64, 3), 0.95, np.float32)
    patch, mask, _ = moving_object(rng, texture, 24)
    assert patch.shape == (24, 24, 3) and mask.shape == (24, 24) and 0 <= mask.min() and mask.max() <= 1
    obj = (patch, mask, Motion(shift=(16.0, 0.0)))
    blurred, sharp = render_motion_blur(background, Motion(), exposure=17, obj=obj, obj_origin=(36, 36))
    assert np.allclose(blurred[:20], 0.5, atol=1e-5) and np.allclose(sharp[:20], 0.5, atol=1e-5)  # far away: untouched
    assert sharp[48, 48].mean() > 0.9  # the object sits in the sharp frame
    assert 0.5 < blurred[48, 48].mean() < sharp[48, 48].mean() - 0.02  # and is smeared in the blurred one
    assert blurred[48, 28].mean() > 0.52  # its trail reaches beyond its sharp outline


def test_random_motion_speed_stays_in_range() -> None:
    rng = np.random.default_rng(2)
    speeds = [float(np.hypot(*random_motion(rng, max_shift=10.0).shift)) for _ in range(200)]
    assert 0.25 <= min(speeds) and max(speeds) <= 10.0 + 1e-6
    assert np.median(speeds) < 5.0  # log-uniform: most frames move little


def _warp_dataset(still_size: int, **mix) -> SynthesisedPairs:
    rng = np.random.default_rng(0)
    stills = [rng.integers(0, 256, (still_size, still_size + 10, 3), dtype=np.uint8) for _ in range(3)]
    return SynthesisedPairs([], stills, SynthesisMix(crop=32, p_average=0.0, p_warp=1.0, p_sharp=0.0, p_noise=0.0,
                                                     p_jpeg=0.0, exposures=(9, 17), **mix), seed=5)


def test_warped_still_pairs_are_deterministic_shaped_and_blurred() -> None:
    a, b = _warp_dataset(120), _warp_dataset(120)
    differences = []
    for i in range(8):
        (ba, sa), (bb, sb) = a[i], b[i]
        assert ba.shape == sa.shape == (3, 32, 32)
        assert np.array_equal(ba.numpy(), bb.numpy()) and np.array_equal(sa.numpy(), sb.numpy())
        differences.append(float((ba - sa).abs().mean()))
    assert np.mean(differences) > 0.01


def test_warped_stills_too_small_for_the_motion_margin_are_an_error() -> None:
    with pytest.raises(UnreadableInputError, match="smaller than"):
        _warp_dataset(40)[0]


def _untouched_share(blurred: torch.Tensor, sharp: torch.Tensor) -> float:
    return float(((blurred - sharp).abs().amax(dim=0) < 1e-4).float().mean())


def test_still_camera_pairs_blur_only_the_moving_object() -> None:
    still = _warp_dataset(120, p_object=1.0, p_still_camera=1.0)
    moving = _warp_dataset(120, p_object=1.0)
    pairs = [still[i] for i in range(12)]
    assert min(_untouched_share(b, s) for b, s in pairs) > 0.5  # the background is the same in input and target
    assert max(float((b - s).abs().max()) for b, s in pairs) > 0.1  # and the object is blurred where it shows
    assert np.mean([_untouched_share(*moving[i]) for i in range(12)]) < 0.1  # a moving camera blurs it all


def test_mix_probabilities_over_one_are_a_config_error() -> None:
    with pytest.raises(ConfigError, match="p_average \\+ p_warp"):
        SynthesisMix(p_average=0.5, p_warp=0.4, p_sharp=0.2)


def _detail(image: torch.Tensor) -> float:
    """Mean absolute difference between horizontal neighbours: how much fine detail a 3×H×W image holds."""
    return float(np.abs(np.diff(image.numpy(), axis=2)).mean())


def test_defocused_sharp_pairs_stay_identical_and_lose_detail() -> None:
    plain = _dataset(p_average=0.0, p_sharp=1.0)
    soft = _dataset(p_average=0.0, p_sharp=1.0, p_defocus=1.0, defocus_radius=(3.0, 3.0))
    for i in range(4):
        (x, _), (xs, ys) = plain[i], soft[i]
        assert np.array_equal(xs.numpy(), ys.numpy())  # still sharp-in/sharp-out: the target is out of focus too
        assert _detail(xs) < 0.6 * _detail(x)  # the same crop, out of focus


def test_defocused_moving_camera_stills_have_soft_targets() -> None:
    crisp = np.mean([_detail(_warp_dataset(120)[i][1]) for i in range(6)])
    soft = np.mean([_detail(_warp_dataset(120, p_defocus=1.0, defocus_radius=(3.0, 3.0))[i][1]) for i in range(6)])
    assert soft < 0.6 * crisp


@pytest.mark.parametrize("radius", [0.7, 2.0, 5.5])
def test_defocus_kernel_is_a_normalised_centred_disk(radius: float) -> None:
    kernel = defocus_kernel(radius)
    assert kernel.shape[0] == kernel.shape[1] == 2 * int(np.ceil(radius)) + 1
    assert kernel.sum() == pytest.approx(1.0, abs=1e-5) and kernel.min() >= 0
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1])  # symmetric: no shift
    c = kernel.shape[0] // 2
    assert kernel[c, c] == kernel.max() and kernel[0, 0] < kernel[c, c]  # a disk, not a box


def test_recolour_reorders_channels_and_saturates_about_grey() -> None:
    image = np.array([[[0.5, 0.2, 0.6], [0.3, 0.3, 0.3]]], np.float32)
    same = recolour(image, np.array([0, 1, 2]), 1.0)
    assert np.allclose(same, image)
    turned = recolour(image, np.array([2, 0, 1]), 1.0)
    assert np.allclose(turned[0, 0], [0.6, 0.5, 0.2])
    vivid = recolour(image, np.array([0, 1, 2]), 3.0)
    assert np.allclose(vivid[0, 1], 0.3)  # grey stays grey
    assert vivid[0, 0, 2] - vivid[0, 0, 1] > 3 * (image[0, 0, 2] - image[0, 0, 1]) - 1e-6 or vivid[0, 0, 2] == 1.0
    assert vivid.min() >= 0.0 and vivid.max() <= 1.0


def test_recoloured_pairs_are_drawn_only_when_asked_and_change_both_alike() -> None:
    plain, off = _dataset(p_noise=0.0, p_jpeg=0.0), _dataset(p_noise=0.0, p_jpeg=0.0, p_recolour=0.0)
    for i in range(4):  # an older recipe (no p_recolour) draws exactly the pairs it drew before
        assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(plain[i], off[i]))
    sharp_only = _dataset(p_average=0.0, p_sharp=1.0, p_recolour=1.0, recolour_saturation=(2.5, 3.0))
    grey = lambda t: t.numpy().std(axis=0).mean()  # how far pixels are from grey
    plain_sharp = _dataset(p_average=0.0, p_sharp=1.0)
    for i in range(4):
        x, y = sharp_only[i]
        assert np.array_equal(x.numpy(), y.numpy())  # input and target recoloured alike
        assert grey(x) > 1.5 * grey(plain_sharp[i][0])


def test_real_pairs_go_through_the_mix_as_synthesised_ones_do(tmp_path) -> None:
    """A recipe of real pairs only (the README's GoPro fine-tune) took crops as they were: no sharp
    pairs, no H.264, no recolouring, no flips, whatever [data.mix] said, and said nothing."""
    from pathlib import Path

    from videodeblur.train.data import write_rgb
    from videodeblur.train.recipe import DataSpec
    from videodeblur.train.training_set import build_dataset

    rng = np.random.default_rng(3)
    sharp = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    write_rgb(Path(tmp_path) / "scene" / "sharp" / "0.png", sharp)
    write_rgb(Path(tmp_path) / "scene" / "blur" / "0.png", (sharp // 2).astype(np.uint8))

    def items(**mix: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
        spec = DataSpec(pairs=(str(tmp_path),), mix=SynthesisMix(crop=32, p_average=0.0, p_noise=0.0, p_jpeg=0.0, **mix))
        data = build_dataset(spec, seed=0)
        return [data[i] for i in range(24)]

    assert all(torch.equal(a, b) for a, b in items(p_sharp=1.0))  # sharp in, sharp out
    plain = items(p_sharp=0.0)
    assert not any(torch.equal(a, b) for a, b in plain)
    assert all(torch.allclose(a, torch.floor(b * 255 / 2) / 255, atol=1e-6) for a, b in plain)  # the pair itself
    crops = {bytes(np.asarray(b * 255).round().astype(np.uint8)) for _, b in plain}
    flipped = [b for _, b in plain if not any(torch.equal(b, c) for c in
                                            [torch.from_numpy(np.ascontiguousarray(sharp[y:y + 32, x:x + 32]
                                                                                    .transpose(2, 0, 1))).float() / 255
                                             for y in range(17) for x in range(33)])]
    assert len(crops) == 24 and flipped  # flipped crops are not crops of the picture as it is
    for a, b in items(p_sharp=0.0, p_h264=1.0):  # the input through H.264: near the pair's, not it
        pair_input = torch.floor(b * 255 / 2) / 255
        assert not torch.allclose(a, pair_input, atol=1e-6)
        assert psnr((a * 255).round().byte().numpy(), (pair_input * 255).round().byte().numpy()) > 14  # noise codes badly


def test_with_no_scene_to_average_its_share_goes_to_the_other_kinds(tmp_path) -> None:
    """Images only (or scenes under 3 frames) give no averaged pairs: their share became sharp-in,
    sharp-out pairs without a word (169 of 200 where 20 % were meant). It goes to the other kinds in
    their proportions, and the run is told."""
    from pathlib import Path

    from videodeblur.train.data import write_rgb
    from videodeblur.train.recipe import DataSpec
    from videodeblur.train.training_set import build_dataset

    rng = np.random.default_rng(4)
    write_rgb(Path(tmp_path) / "a.png", rng.integers(0, 256, (64, 80, 3), dtype=np.uint8))
    mix = SynthesisMix(crop=32, p_average=0.5, p_warp=0.0, p_sharp=0.1, p_noise=0.0, p_jpeg=0.0, kernel_sizes=(9,))
    said: list[str] = []
    data = build_dataset(DataSpec(images=(f"{tmp_path}/*.png",), mix=mix), seed=0, warn=said.append)
    same = sum(torch.equal(*data[i]) for i in range(200))
    assert 20 <= same <= 65, same  # a fifth of the rest (0.1 of 0.5), not 0.6 of all
    assert said == ["data.mix.p_average 0.5: no averaged (GoPro-style) pairs, as no video scene has 3 frames or "
                    "more; that share goes to the other kinds of pairs, in their proportions"]


def test_a_training_video_named_like_a_protocol_is_read(make_clip, tmp_path, monkeypatch) -> None:
    """A camera's timestamp name (2024-05-06T10:30:00.mp4) in the folder a recipe runs in: FFmpeg read
    its start as a protocol, and training stopped with 'cannot read training video ... Protocol not found'."""
    make_clip(tmp_path / "2024-05-06T10:30:00.mp4", width=64, height=48, frames=3)
    monkeypatch.chdir(tmp_path)
    (scene,) = read_video_scenes("2024-05-06T10:30:00.mp4")
    assert len(scene.frames) == 3
