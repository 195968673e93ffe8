"""Still images: modes, sizes, folder mode and the checks done before the network runs."""
from __future__ import annotations

import dataclasses
import os
import shutil
import struct
import threading
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import ExifTags
from PIL import Image as PILImage  # dpi, comment and ICC written and read by another library (torchvision's dependency)

from conftest import clip_frame, psnr
from videodeblur.errors import InputNotFoundError, OutputError, UnreadableInputError
from videodeblur.image_metadata import insert_png_chunks, insert_segments, png_chunk, png_orientation, tiff_samples_per_pixel
from videodeblur.images import Image, deblur_image_file, deblur_images, plan_images, read_image, write_image


@pytest.fixture(scope="module")
def engine():
    from videodeblur.pipeline import Engine, EngineOptions

    return Engine.from_name("lprn-fast", EngineOptions(device="cpu", precision="fp32", batch_size=1))


def expected(engine, rgb: np.ndarray) -> np.ndarray:
    """What the file path must produce: the engine's own answer on the same pixels."""
    return engine.process(rgb[np.newaxis])[0]


def bgr_of(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize("width,height", [(64, 48), (33, 21)])
def test_colour_png_keeps_size_and_colour_and_equals_engine(engine, make_image, tmp_path, width, height):
    src = make_image("in.png", width=width, height=height)
    dst = deblur_image_file(src, tmp_path / "out.png", engine)
    out = bgr_of(dst)
    assert out.shape == (height, width, 3) and out.dtype == np.uint8
    rgb = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
    want = expected(engine, clip_frame(0, width, height))
    assert np.array_equal(rgb, want)  # PNG is lossless: exactly the engine's pixels, channel order right
    assert 15.0 < psnr(rgb, clip_frame(0, width, height)) < np.inf  # the same picture, changed by the model


def test_deterministic(engine, make_image, tmp_path):
    src = make_image("in.png", width=40, height=30)
    a = deblur_image_file(src, tmp_path / "a.png", engine)
    b = deblur_image_file(src, tmp_path / "b.png", engine)
    assert a.read_bytes() == b.read_bytes()


def test_greyscale_stays_greyscale(engine, make_image, tmp_path):
    src = make_image("grey.png", width=32, height=24, mode="gray")
    grey_in = bgr_of(src)
    out = bgr_of(deblur_image_file(src, tmp_path / "out.png", engine))
    assert out.shape == (24, 32) and out.dtype == np.uint8
    want = cv2.cvtColor(expected(engine, cv2.cvtColor(grey_in, cv2.COLOR_GRAY2RGB)), cv2.COLOR_RGB2GRAY)
    assert np.array_equal(out, want)


def test_alpha_kept_in_png_dropped_in_jpeg(engine, make_image, tmp_path):
    src = make_image("rgba.png", width=32, height=24, mode="rgba")
    alpha_in = bgr_of(src)[..., 3]
    said: list[str] = []
    png = bgr_of(deblur_image_file(src, tmp_path / "out.png", engine, warn=said.append))
    assert png.shape == (24, 32, 4) and said == []
    assert np.array_equal(png[..., 3], alpha_in)
    jpg = bgr_of(deblur_image_file(src, tmp_path / "out.jpg", engine, warn=said.append))
    assert said == [f"{tmp_path / 'out.jpg'}: .jpg cannot hold the alpha channel of {src}; "
                    "it is left out (.png, .tiff, .webp, .avif keep it)"]
    assert jpg.shape == (24, 32, 3)
    assert psnr(jpg, png[..., :3]) > 30  # same colour pixels, only JPEG loss between them


def test_jpeg_in_jpeg_out(engine, make_image, tmp_path):
    src = make_image("in.jpg", width=48, height=32)
    out = bgr_of(deblur_image_file(src, tmp_path / "out.jpeg", engine))
    assert out.shape == (32, 48, 3)
    want = cv2.cvtColor(expected(engine, read_image(src).rgb), cv2.COLOR_RGB2BGR)
    assert psnr(out, want) > 30  # JPEG quality 95


def _exif_segment(orientation: int, when: bytes) -> bytes:
    """A little-endian EXIF APP1 segment: IFD0 with Orientation (SHORT) and DateTime (ASCII, 20 bytes)."""
    ifd = struct.pack("<H", 2) + struct.pack("<HHII", 0x0112, 3, 1, orientation) + struct.pack("<HHII", 0x0132, 2, 20, 38)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + when
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", 2 + len(payload)) + payload


def test_a_jpeg_keeps_its_exif_and_colour_profile_and_stays_upright(engine, tmp_path):
    """A phone photo's date (EXIF) and colour profile (ICC) survive; its orientation, already applied
    to the pixels, is reset to 1 so no viewer turns it a second time."""
    when = b"2024:07:01 10:00:00\x00"
    icc = b"ICC_PROFILE\x00\x01\x01" + b"not a real profile, carried byte for byte"
    icc_segment = b"\xff\xe2" + struct.pack(">H", 2 + len(icc)) + icc
    rgb = clip_frame(0, 48, 32)
    plain = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
    src = tmp_path / "phone.jpg"
    src.write_bytes(plain[:2] + _exif_segment(6, when) + icc_segment + plain[2:])  # 6: turn 90° clockwise
    assert read_image(src).rgb.shape == (48, 32, 3)  # upright: portrait
    out = deblur_image_file(src, tmp_path / "out.jpg", engine)
    data = out.read_bytes()
    assert icc_segment in data and when in data and _exif_segment(1, when) in data
    assert cv2.imread(str(out), cv2.IMREAD_COLOR).shape == (48, 32, 3)  # a reader applying EXIF leaves it upright
    png = deblur_image_file(src, tmp_path / "out.png", engine)
    # the EXIF goes into the PNG too (it was dropped), upright, so no viewer turns it a second time
    assert bgr_of(png).shape == (48, 32, 3) and _exif_segment(1, when)[10:] in png.read_bytes()


def _icc_profile() -> bytes:
    """A profile libpng reads without a warning: a v2 RGB display header (D50, XYZ connection
    space), an empty tag table and 128 bytes of tag data that do not compress. libpng 1.6.58 says
    "iCCP: too short" of an iCCP chunk under 81 bytes plus a little, whatever the profile in it; the
    few bytes used before made it warn on every read, which the run passed on as its own warning."""
    tag_data = np.random.default_rng(0).bytes(128)
    header = bytearray(132)  # the 128-byte header, then the tag count (0)
    struct.pack_into(">I", header, 0, len(header) + len(tag_data))  # the profile's size
    header[8:12] = b"\x02\x10\x00\x00"  # version 2.1
    header[12:24] = b"mntrRGB XYZ "  # a display; RGB data; XYZ connection space
    header[36:40] = b"acsp"
    struct.pack_into(">3i", header, 68, 0xF6D6, 0x10000, 0xD32D)  # the D50 illuminant, s15.16
    return bytes(header) + tag_data


@pytest.mark.parametrize("source", ["jpg", "png", "webp", "avif"])
def test_a_colour_profile_goes_into_every_format_that_holds_one(engine, tmp_path, source):
    """A WebP's profile was dropped (OpenCV writes none), and a JPEG's into a PNG, a PNG's into a JPEG,
    without a word: colour-managed viewers showed a wide-gamut photo duller. Every output that holds
    a profile gets the source's; one that does not (BMP) says so. An AVIF's (a colr box) was not read,
    and none was written into an AVIF (OpenCV writes none): it goes beside OpenCV's nclx colr box."""
    from PIL import features

    if source == "avif" and not features.check("avif"):
        pytest.skip("this Pillow writes no AVIF")
    profile = _icc_profile()
    src = tmp_path / f"in.{source}"
    PILImage.fromarray(clip_frame(2, 40, 30)).save(src, icc_profile=profile, **({"quality": 95} if source == "jpg" else {}))
    assert read_image(src).icc == profile
    for ext in ("jpg", "png", "tif", "webp", *(("avif",) if features.check("avif") else ())):
        out = deblur_image_file(src, tmp_path / f"out-{source}.{ext}", engine)
        with PILImage.open(out) as written:
            written.load()
            assert written.info.get("icc_profile") == profile, ext
            assert written.size == (40, 30) and psnr(np.asarray(written.convert("RGB")), clip_frame(2, 40, 30)) > 20
        assert psnr(read_image(out).rgb, clip_frame(2, 40, 30)) > 20  # OpenCV reads it too
    said: list[str] = []
    deblur_image_file(src, tmp_path / "out.bmp", engine, warn=said.append)
    assert said == [f"{tmp_path / 'out.bmp'}: written without the colour profile of {src}, so colour-managed viewers "
                    "may show it duller (.jpg, .png, .tiff, .webp and .avif keep it)"]


def test_a_grey_profile_goes_only_where_the_picture_stays_grey(engine, tmp_path):
    """A grey JPEG's GRAY profile was written into its WebP, which is RGB: a colour-managed reader
    cannot use it (lcms: "cannot build transform"). A grey PNG keeps it; the WebP says it is left out."""
    grey_profile = bytearray(_icc_profile())
    grey_profile[16:20] = b"GRAY"
    src = tmp_path / "grey.jpg"
    PILImage.fromarray(clip_frame(1, 40, 30)[..., 1]).save(src, icc_profile=bytes(grey_profile), quality=95)
    png = deblur_image_file(src, tmp_path / "out.png", engine, warn=pytest.fail)
    with PILImage.open(png) as written:
        assert written.mode == "L" and written.info.get("icc_profile") == bytes(grey_profile)
    said: list[str] = []
    webp = deblur_image_file(src, tmp_path / "out.webp", engine, warn=said.append)
    with PILImage.open(webp) as written:
        assert written.mode == "RGB" and not written.info.get("icc_profile")
    assert said == [f"{webp}: written without the colour profile of {src}: it describes grey pictures, and .webp "
                    "holds this one as RGB"]
    avif = deblur_image_file(src, tmp_path / "out.avif", engine, warn=pytest.fail)  # monochrome: it fits
    assert read_image(avif).icc == bytes(grey_profile) and read_image(avif).grey


def test_a_webp_with_alpha_keeps_its_alpha_and_takes_a_profile(engine, tmp_path):
    """An RGBA WebP is written in the extended layout already (VP8X, ALPH): the profile goes in after
    its header, its flags say so, and the picture and its alpha still read back."""
    rgba = np.dstack([clip_frame(4, 36, 28), np.tile(np.linspace(0, 255, 36, dtype=np.uint8), (28, 1))])
    src = tmp_path / "in.png"
    PILImage.fromarray(rgba, "RGBA").save(src, icc_profile=_icc_profile())
    out = deblur_image_file(src, tmp_path / "out.webp", engine)
    with PILImage.open(out) as written:
        written.load()
        assert written.mode == "RGBA" and written.info.get("icc_profile") == _icc_profile()
        assert np.abs(np.asarray(written)[..., 3].astype(int) - rgba[..., 3]).max() <= 2


def _photo_with_exif(path: Path, endian: str = "<", mode: str = "RGB") -> Path:
    """A 40x24 picture saved by Pillow with EXIF: camera, date, exposure, a GPS position, turned 90°
    (orientation 6); ``endian``: the EXIF's byte order (">": Motorola's, many cameras'); ``mode``: Pillow's."""
    exif = PILImage.Exif()
    exif.endian = endian
    exif[0x010F], exif[0x0132], exif[0x0112] = "TestMake", "2026:12:02 10:00:00", 6
    exif.get_ifd(0x8769).update({0x829A: 1 / 250, 0x9003: "2026:12:01 09:30:00"})
    exif.get_ifd(0x8825).update({1: "N", 2: (52.0, 30.0, 0.0)})
    picture = PILImage.fromarray(clip_frame(0, 40, 24)).convert(mode)
    picture.save(path, exif=exif.tobytes(), **({"lossless": True} if path.suffix == ".webp" else {}))
    return path


def _assert_exif_of_photo(out: PILImage.Image, orientation: int | None = 1) -> None:
    """``out`` carries :func:`_photo_with_exif`'s EXIF, upright (``orientation`` None: with no such tag)."""
    exif = out.getexif()
    assert (exif.get(0x010F), exif.get(0x0132), exif.get(0x0112)) == ("TestMake", "2026:12:02 10:00:00", orientation)
    assert exif.get_ifd(0x8769).get(0x9003) == "2026:12:01 09:30:00"
    assert float(exif.get_ifd(0x8769).get(0x829A)) == pytest.approx(1 / 250)
    gps = exif.get_ifd(0x8825)
    assert gps.get(1) == "N" and tuple(map(float, gps.get(2))) == (52.0, 30.0, 0.0)


@pytest.mark.parametrize("out_ext", [".jpg", ".png", ".webp", ".tif", ".avif"])
@pytest.mark.parametrize("in_ext", [".jpg", ".png", ".webp", ".tif", "big-endian.jpg", ".avif"])
def test_exif_crosses_into_every_format_that_holds_it(engine, tmp_path, in_ext, out_ext):
    """A photographer's camera, date, exposure and place follow the picture into a JPEG, PNG, TIFF or
    WebP output, upright once (orientation 1: the pixels are turned already). Only JPEG to JPEG and PNG
    to PNG kept it; WebP to WebP, JPEG to PNG... dropped it without a word. An AVIF's (an Exif item
    beside its picture; Pillow writes its orientation as the rotation box) was not read at all, nor
    written into an AVIF output (OpenCV writes none); written, the output still reads (OpenCV's reader
    refused an AVIF whose Exif data came after its picture's)."""
    from PIL import features

    if ".avif" in (in_ext, out_ext) and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    src = _photo_with_exif(tmp_path / f"in{in_ext}", ">" if in_ext.startswith("big") else "<")
    dst = deblur_image_file(src, tmp_path / f"out{out_ext}", engine, warn=pytest.fail)
    with PILImage.open(dst) as out:
        assert out.size == (24, 40)  # turned upright on reading
        _assert_exif_of_photo(out, None if in_ext == ".avif" else 1)  # (taken out of an AVIF's EXIF by Pillow)
    assert read_image(dst).rgb.shape == (40, 24, 3)


def test_a_damaged_avif_gives_no_exif_and_is_given_none():
    """The HEIF boxes are read and rewritten by hand (videodeblur.heif): an AVIF cut anywhere, or with a
    byte changed in its boxes or its EXIF, reads and takes metadata without an exception."""
    from videodeblur.heif import heif_with_item, heif_with_property
    from videodeblur.icc_profile import icc_profile
    from videodeblur.image_exif import exif_data

    ok, encoded = cv2.imencode(".avif", clip_frame(0, 24, 16), [cv2.IMWRITE_AVIF_QUALITY, 90])
    whole = heif_with_item(encoded.tobytes(), b"Exif", bytes(4) + _exif_tiff())
    assert ok and exif_data(whole) == _exif_tiff()
    rng = np.random.default_rng(0)
    for cut in range(0, len(whole), 5):
        damaged = bytearray(whole[:cut] if cut % 2 else whole)
        if not cut % 2:
            damaged[rng.integers(0, 400)] ^= 0xFF  # within meta or the EXIF after it
        damaged = bytes(damaged)
        assert isinstance(exif_data(damaged), bytes) and isinstance(icc_profile(damaged), bytes)
        for written in (heif_with_item(damaged, b"Exif", b"x"), heif_with_property(damaged, b"colr", b"prof")):
            assert isinstance(written, bytes)


def _exif_tiff() -> bytes:
    exif = PILImage.Exif()
    exif[0x010F] = "Cam"
    return exif.tobytes()[6:]  # without JPEG's "Exif\0\0"


@pytest.mark.parametrize("in_ext", [".png", ".tif"])
def test_a_grey_and_alpha_tiff_output_keeps_the_exif(engine, tmp_path, in_ext):
    """A grey + alpha TIFF is written by FFmpeg, which tags it with its own name as Software: that tag
    was taken for the source's EXIF already there, and the camera, date and place were left out
    without a word."""
    src = _photo_with_exif(tmp_path / f"in{in_ext}", mode="LA")
    dst = deblur_image_file(src, tmp_path / "out.tif", engine, warn=pytest.fail)
    with PILImage.open(dst) as out:
        assert (out.mode, out.size) == ("LA", (24, 40))
        _assert_exif_of_photo(out)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_a_tiff_turned_by_its_orientation_comes_out_upright_with_alpha_too(tmp_path, mode):
    """OpenCV turns an RGB TIFF by its orientation tag; the RGBA and grey + alpha ones, decoded by
    FFmpeg, came out on their side (and every output is read as upright)."""
    exif = PILImage.Exif()
    exif[0x0112] = 6
    src = tmp_path / f"{mode}.tif"
    PILImage.fromarray(np.zeros((24, 40, len(mode)), np.uint8).squeeze(), mode).save(src, exif=exif.tobytes())
    image = read_image(src)
    assert image.rgb.shape == (40, 24, 3) and (image.alpha is None) == (mode == "RGB")


def test_a_tiffs_orientation_tag_alone_is_no_exif_to_carry(tmp_path):
    """Pillow (and many writers) tag a TIFF upright, orientation 1, with no other EXIF tag: that was
    carried as an EXIF holding only the orientation, and a BMP output warned 'written without the EXIF
    ... (camera, date, place)' of a picture that had none."""
    exif = PILImage.Exif()
    exif[0x0112] = 1
    src = tmp_path / "upright.tif"
    PILImage.fromarray(clip_frame(0, 40, 24)).save(src, exif=exif.tobytes())
    image = read_image(src)
    assert image.exif == b""
    said: list[str] = []
    write_image(tmp_path / "out.bmp", image, warn=said.append)
    assert said == []
    exif[0x010F] = "Camera maker"  # with a camera tag beside it, there is EXIF to carry
    PILImage.fromarray(clip_frame(0, 40, 24)).save(src, exif=exif.tobytes())
    assert read_image(src).exif != b""


def _jpeg_with_exif(tiff: bytes) -> bytes:
    """A small JPEG whose APP1 holds the EXIF TIFF data ``tiff`` as it is, damaged or not."""
    encoded = cv2.imencode(".jpg", clip_frame(0, 16, 8))[1].tobytes()
    return insert_segments(encoded, b"\xff\xe1" + struct.pack(">H", 8 + len(tiff)) + b"Exif\x00\x00" + tiff)


def test_exif_whose_directory_points_at_itself_again_and_again_is_carried_into_a_tiff_at_once(tmp_path):
    """A damaged EXIF directory repeating its EXIF-directory pointer, each at the directory itself,
    was copied cubically many times into a TIFF output: 40 repeats (506 bytes) took 28 s and wrote
    2 MB, the thousands a JPEG's segment holds hung. A tag is copied once."""
    entries = [struct.pack("<HHI", 0x010F, 2, 4) + b"Cam\x00"] + [struct.pack("<HHII", 34665, 4, 1, 8)] * 3000
    tiff = b"II*\x00" + struct.pack("<IH", 8, len(entries)) + b"".join(entries) + struct.pack("<I", 8)
    (tmp_path / "in.jpg").write_bytes(_jpeg_with_exif(tiff))
    image = read_image(tmp_path / "in.jpg")
    out = write_image(tmp_path / "out.tif", image)
    assert len(out.read_bytes()) < 20_000
    with PILImage.open(out) as pil:
        assert pil.getexif()[0x010F] == "Cam"


@pytest.mark.parametrize("damage", ["directory past the end", "directory of no entries"])
def test_exif_with_no_readable_tag_is_none_and_a_tiff_output_does_not_call_it_too_large(tmp_path, damage):
    """EXIF whose first directory cannot be read, or holds nothing, was carried as EXIF: a TIFF output,
    which takes its tags one by one, got none and warned 'it is larger than a JPEG's EXIF segment
    holds (64 KB)' of a few bytes."""
    tiff = b"II*\x00" + (struct.pack("<I", 0xFFFFFFF0) if damage == "directory past the end"
                          else struct.pack("<IHI", 8, 0, 0))
    (tmp_path / "in.jpg").write_bytes(_jpeg_with_exif(tiff))
    image = read_image(tmp_path / "in.jpg")
    assert image.exif == b""
    said: list[str] = []
    out = write_image(tmp_path / "out.tif", image, warn=said.append)
    assert said == []
    with PILImage.open(out) as pil:
        pil.load()


def test_exif_pointing_thousands_of_times_at_its_whole_self_is_carried_within_bounds(tmp_path):
    """An EXIF directory of thousands of entries, each's value the whole EXIF (a PNG's eXIf may be
    any size), was copied value by value without limit into a TIFF output: here 2,000 x 200 KB."""
    count = 2000
    ifd0 = struct.pack("<H", 2) + struct.pack("<HHI", 0x010F, 2, 4) + b"Cam\x00" \
        + struct.pack("<HHII", 34665, 4, 1, 38) + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd0
    assert len(tiff) == 38  # the EXIF directory follows: header (8), IFD0 (2 + 2 x 12 + 4)
    size = 200_000
    tiff += struct.pack("<H", count) + b"".join(struct.pack("<HHII", 0x9000 + n, 7, size, 0) for n in range(count))
    tiff += struct.pack("<I", 0) + bytes(size - len(tiff) + 100)
    src = tmp_path / "in.png"
    encoded = cv2.imencode(".png", clip_frame(0, 16, 8))[1].tobytes()
    src.write_bytes(insert_png_chunks(encoded, [(b"eXIf", png_chunk(b"eXIf", tiff))]))
    out = write_image(tmp_path / "out.tif", read_image(src))
    assert len(out.read_bytes()) < 2 * 1024 * 1024
    with PILImage.open(out) as pil:
        pil.load()
        assert pil.getexif()[0x010F] == "Cam"

@pytest.mark.parametrize("out_ext", [".bmp"])
def test_an_output_that_cannot_hold_the_exif_says_so(engine, tmp_path, out_ext):
    src = _photo_with_exif(tmp_path / "in.jpg")
    said: list[str] = []
    deblur_image_file(src, tmp_path / f"out{out_ext}", engine, warn=said.append)
    assert said == [f"{tmp_path / f'out{out_ext}'}: written without the EXIF of {src} (camera, date, place): "
                    f"{out_ext} cannot carry it here (.jpg, .png, .tiff, .webp and .avif keep it)"]


def test_a_png_keeps_its_colour_profile_exif_and_text(engine, tmp_path):
    """The colour, EXIF, text and pixel-size chunks come through byte for byte; sBIT, which
    describes the source's bit depth, does not."""
    kept = [png_chunk(b"iCCP", b"Display P3\x00\x00" + zlib.compress(_icc_profile())),
            png_chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1)),  # 300 dpi
            png_chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08\x00\x00"),
            png_chunk(b"tEXt", b"Creation Time\x002024-07-01 10:00")]
    plain = cv2.imencode(".png", cv2.cvtColor(clip_frame(0, 40, 30), cv2.COLOR_RGB2BGR))[1].tobytes()
    header_end = 8 + 25  # signature, then IHDR (13 bytes of data)
    src = tmp_path / "in.png"
    src.write_bytes(plain[:header_end] + b"".join(kept) + png_chunk(b"sBIT", b"\x08\x08\x08") + plain[header_end:])
    out = deblur_image_file(src, tmp_path / "out.png", engine).read_bytes()
    assert all(chunk in out for chunk in kept) and b"sBIT" not in out
    assert out.index(b"iCCP") < out.index(b"IDAT")  # colour chunks before the pixels, as PNG requires
    assert bgr_of(tmp_path / "out.png").shape == (30, 40, 3)


def test_sixteen_bit_png_reads_as_eight_bit(tmp_path):
    wide = clip_frame(0, 20, 10).astype(np.uint16) * 257
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), cv2.cvtColor(wide, cv2.COLOR_RGB2BGR))
    image = read_image(path)
    assert image.rgb.dtype == np.uint8 and np.array_equal(image.rgb, clip_frame(0, 20, 10))


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_a_sixteen_bit_png_comes_out_sixteen_bit(engine, tmp_path, channels):
    """A smooth 16-bit gradient would band into 256 levels at 8 bits: the network's change is added
    to the 16-bit source instead, so samples it leaves alone keep all 16 bits."""
    y, x = np.mgrid[0:48, 0:64]
    ramp = (x * 60 + y * 11 + 3000).astype(np.uint16)  # about 4300 levels: 8 bits would keep 17
    deep = {1: ramp, 3: np.dstack([ramp, ramp // 2, 65535 - ramp]),
            4: np.dstack([ramp, ramp // 2, 65535 - ramp, np.full_like(ramp, 40000)])}[channels]
    src = tmp_path / "deep.png"
    cv2.imwrite(str(src), deep)
    out = cv2.imread(str(deblur_image_file(src, tmp_path / "out.png", engine)), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == deep.shape
    assert len(np.unique(out)) > 1000  # not 256 levels
    said: list[str] = []
    eight = bgr_of(deblur_image_file(src, tmp_path / "out.jpg", engine, warn=said.append))
    assert eight.dtype == np.uint8  # JPEG stays 8-bit, and says so
    assert len(said) == 1 and "cannot hold" in said[0] and "16 bits per sample" in said[0]
    # Every sample is the source's plus whole 8-bit steps (x 257): the low byte's detail is kept ...
    step = out.astype(np.int64) - deep
    assert np.all((step % 257 == 0) | (out == 0) | (out == 65535))
    # ... and the steps are the network's: the same image at 8 bits deblurs to out's high byte (+-1: carries).
    shallow = tmp_path / "shallow.png"
    cv2.imwrite(str(shallow), (deep >> 8).astype(np.uint8))
    out8 = cv2.imread(str(deblur_image_file(shallow, tmp_path / "out8.png", engine)), cv2.IMREAD_UNCHANGED)
    assert np.abs((out >> 8).astype(np.int64) - out8).max() <= 1 and (out8 != (deep >> 8)).any()
    if channels == 4:
        assert np.array_equal(out[..., 3], deep[..., 3])  # 16-bit alpha untouched


def test_tiff_webp_avif_and_bmp_in_and_out(engine, tmp_path):
    """A photo editor's 16-bit TIFF stays 16-bit TIFF; WebP and AVIF keep their alpha; BMP reads and writes;
    each equals the network's output for the same pixels (WebP: as WebP at quality 95 codes it)."""
    y, x = np.mgrid[0:48, 0:64]
    ramp = (x * 60 + y * 11 + 3000).astype(np.uint16)
    deep = np.dstack([ramp, ramp // 2, 65535 - ramp])
    cv2.imwrite(str(tmp_path / "deep.tif"), deep)
    out = cv2.imread(str(deblur_image_file(tmp_path / "deep.tif", tmp_path / "out.tif", engine)), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == deep.shape and len(np.unique(out)) > 1000
    rgba = np.dstack([clip_frame(2, 64, 48), np.full((48, 64), 77, np.uint8)])
    cv2.imwrite(str(tmp_path / "a.webp"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), [cv2.IMWRITE_WEBP_QUALITY, 101])
    webp = cv2.imread(str(deblur_image_file(tmp_path / "a.webp", tmp_path / "out.webp", engine)), cv2.IMREAD_UNCHANGED)
    expected = engine.process(clip_frame(2, 64, 48)[None])[0]  # the lossless WebP read back exactly
    bgra = np.dstack([cv2.cvtColor(expected, cv2.COLOR_RGB2BGR), np.full((48, 64), 77, np.uint8)])
    same = cv2.imdecode(cv2.imencode(".webp", bgra, [cv2.IMWRITE_WEBP_QUALITY, 95])[1], cv2.IMREAD_UNCHANGED)
    assert webp.shape == (48, 64, 4) and np.array_equal(webp, same)  # alpha kept, colour as encoded at quality 95
    cv2.imwrite(str(tmp_path / "b.bmp"), cv2.cvtColor(clip_frame(1, 64, 48), cv2.COLOR_RGB2BGR))
    bmp = cv2.imread(str(deblur_image_file(tmp_path / "b.bmp", tmp_path / "out.bmp", engine)))
    assert np.array_equal(cv2.cvtColor(bmp, cv2.COLOR_BGR2RGB), engine.process(clip_frame(1, 64, 48)[None])[0])
    cv2.imwrite(str(tmp_path / "c.avif"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    avif = cv2.imread(str(deblur_image_file(tmp_path / "c.avif", tmp_path / "out.avif", engine)), cv2.IMREAD_UNCHANGED)
    assert avif.shape == (48, 64, 4) and np.abs(avif[..., 3].astype(int) - 77).max() <= 2  # alpha kept
    jobs = plan_images([tmp_path], tmp_path / "all")
    assert {j.src.name for j in jobs} >= {"deep.tif", "a.webp", "b.bmp", "c.avif"}


def test_write_read_roundtrip_rgb(tmp_path):
    rgb = clip_frame(3, 17, 9)
    write_image(tmp_path / "x.png", Image(rgb=rgb))
    back = read_image(tmp_path / "x.png")
    assert np.array_equal(back.rgb, rgb) and not back.grey and back.alpha is None


def test_folder_to_folder_keeps_names(engine, make_image, tmp_path):
    make_image("shots/b.png", width=24, height=16)
    make_image("shots/a.JPG", width=26, height=18)
    (tmp_path / "shots" / "notes.txt").write_text("not an image")  # ignored: not *.png/*.jpg/*.jpeg
    written = deblur_images([tmp_path / "shots"], tmp_path / "out" / "nested", engine)
    assert [p.name for p in written] == ["a.JPG", "b.png"]
    assert sorted(p.name for p in (tmp_path / "out" / "nested").iterdir()) == ["a.JPG", "b.png"]
    assert bgr_of(written[0]).shape == (18, 26, 3)


def test_a_folder_takes_its_gifs_and_leaves_out_hidden_files(engine, make_image, tmp_path):
    """A GIF named alone was deblurred (written as PNG); in a folder it was passed over, and a folder of
    GIFs said "no images". A folder copied from a Mac holds ``._name`` files beside each picture,
    which are no pictures: the run failed on them."""
    make_image("shots/a.png", width=24, height=16)
    PILImage.fromarray(clip_frame(3, 20, 12)).save(tmp_path / "shots" / "b.gif")
    (tmp_path / "shots" / "._a.png").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    written = deblur_images([tmp_path / "shots"], tmp_path / "out", engine)
    assert [p.name for p in written] == ["a.png", "b.png"]
    assert bgr_of(written[1]).shape == (12, 20, 3)
    (gifs := tmp_path / "gifs").mkdir()
    shutil.copy(tmp_path / "shots" / "b.gif", gifs / "only.gif")
    assert [p.name for p in deblur_images([gifs], tmp_path / "out2", engine)] == ["only.png"]


def test_deblur_images_can_skip_unreadable_inputs(engine, make_image, tmp_path):
    """The library's loop takes the command's policy (an unreadable file among several is handed to
    ``on_error`` and skipped); without one it raises, as before. The command had its own loop."""
    make_image("shots/a.png", width=20, height=14)
    make_image("shots/c.png", width=20, height=14)
    (tmp_path / "shots" / "b.png").write_bytes(b"not a png at all")
    with pytest.raises(UnreadableInputError, match="b.png"):
        deblur_images([tmp_path / "shots"], tmp_path / "raised", engine)
    skipped = []
    written = deblur_images([tmp_path / "shots"], tmp_path / "out", engine,
                            on_error=lambda job, err: skipped.append((job.src.name, type(err))))
    assert [p.name for p in written] == ["a.png", "c.png"]
    assert skipped == [("b.png", UnreadableInputError)]


def test_several_files_go_to_a_folder(engine, make_image, tmp_path):
    a = make_image("x/one.png", width=16, height=16)
    b = make_image("y/two.png", width=18, height=12)
    written = deblur_images([a, b], tmp_path / "out", engine)
    assert written == [tmp_path / "out" / "one.png", tmp_path / "out" / "two.png"]
    assert bgr_of(written[1]).shape == (12, 18, 3)


def test_single_file_into_existing_folder_or_extensionless_path(make_image, tmp_path):
    src = make_image("in.png", width=16, height=16)
    (tmp_path / "existing").mkdir()
    assert plan_images([src], tmp_path / "existing")[0].dst == tmp_path / "existing" / "in.png"
    assert plan_images([src], tmp_path / "newdir")[0].dst == tmp_path / "newdir" / "in.png"
    assert (tmp_path / "newdir").is_dir()
    # a trailing slash says a folder, whatever the name looks like ("unsupported output extension '.5'")
    assert plan_images([src], f"{tmp_path / 'results_v1.5'}/")[0].dst == tmp_path / "results_v1.5" / "in.png"


@pytest.mark.parametrize("case,error,fragment", [
    ("missing", InputNotFoundError, "input not found"),
    ("empty_folder", UnreadableInputError, r"no images \(\*\.png"),
    ("bad_extension", OutputError, "unsupported output extension '.gif'"),
    ("output_is_file", OutputError, "is a file, but a folder is needed"),
    ("parent_is_file", OutputError, "cannot create output folder"),
    ("same_names", OutputError, "would both be written to"),
    ("overwrite_input", OutputError, "is the input itself"),
])
def test_plan_rejects_bad_paths_before_any_work(make_image, tmp_path, case, error, fragment):
    img = make_image("a/in.png", width=16, height=16)
    (tmp_path / "empty").mkdir()
    (tmp_path / "file.txt").write_text("x")
    inputs, output = {
        "missing": ([tmp_path / "nope.png"], tmp_path / "out.png"),
        "empty_folder": ([tmp_path / "empty"], tmp_path / "out"),
        "bad_extension": ([img], tmp_path / "out.gif"),
        "output_is_file": ([tmp_path / "a"], tmp_path / "file.txt"),
        "parent_is_file": ([img], tmp_path / "file.txt" / "sub" / "out.png"),
        "same_names": ([img, make_image("b/in.png", width=16, height=16)], tmp_path / "out"),
        "overwrite_input": ([img], img),
    }[case]
    with pytest.raises(error, match=fragment) as info:
        plan_images(inputs, output)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("content", [b"", b"hello, I am text\n" * 10, b"\x89PNG\r\n\x1a\n" + b"\0" * 40])
def test_unreadable_file_is_a_typed_error(tmp_path, content):
    path = tmp_path / "fake.png"
    path.write_bytes(content)
    with pytest.raises(UnreadableInputError, match="fake.png"):
        read_image(path)


def test_a_webp_whose_header_gives_a_giant_size_is_unreadable_not_an_internal_error(tmp_path):
    """cv2.imdecode raises (not returns None) past its size limits: `image` said "internal error:
    error: OpenCV(5.0.0) ... Assertion failed", and in a folder it stopped the batch there."""
    import io

    buf, exif = io.BytesIO(), PILImage.Exif()
    exif[0x0112] = 1
    PILImage.new("RGB", (16, 12)).save(buf, "WEBP", exif=exif.tobytes())  # EXIF: the extended (VP8X) header
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"VP8X"
    data[27:30] = b"\x00\x00\x7f"  # canvas height - 1, 24-bit little-endian: 8.3 million rows
    (tmp_path / "giant.webp").write_bytes(bytes(data))
    with pytest.raises(UnreadableInputError, match="giant.webp is not a readable image .*past OpenCV's limits"):
        read_image(tmp_path / "giant.webp")

def test_no_output_named_writes_beside_the_input(make_image, tmp_path):
    (tmp_path / "shots").mkdir()
    make_image("shots/a.png", width=32, height=32)
    make_image("shots/a-deblurred.png", width=32, height=32)  # an earlier run's output: not an input
    jobs = plan_images([tmp_path / "shots"], None)
    assert [(j.src.name, j.dst) for j in jobs] == [("a.png", tmp_path / "shots-deblurred" / "a.png")]
    (single,) = plan_images([tmp_path / "shots" / "a.png"], None)
    assert single.dst == tmp_path / "shots" / "a-deblurred.png"


def test_a_folder_holding_only_earlier_outputs_is_said_not_run(make_image, tmp_path):
    """`video FOLDER` ended with "none of the 0 videos could be deblurred (named above)" (none named),
    and `image FOLDER` exited 0 having done nothing; both left an empty FOLDER-deblurred/."""
    from videodeblur.pipeline.plan import plan_videos

    make_image("shots/a-deblurred.png", width=8, height=8)
    with pytest.raises(UnreadableInputError, match=r"in folder .*shots but earlier outputs \(\*-deblurred\.\*\)"):
        plan_images([tmp_path / "shots"], None)
    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "a-deblurred.mp4").write_bytes(b"")
    with pytest.raises(UnreadableInputError, match="but earlier outputs"):
        plan_videos([tmp_path / "clips"], None)
    assert not (tmp_path / "shots-deblurred").exists() and not (tmp_path / "clips-deblurred").exists()

@pytest.mark.parametrize("name", ["clip.mp4", "clip.png"])
def test_a_video_given_as_an_image_says_which_command_takes_it(make_clip, tmp_path, name):
    """By its name, or by its content where its name says image (a clip saved as .png was called
    corrupt, truncated or not an image)."""
    clip = make_clip("clip.mp4", width=32, height=32, frames=2).rename(tmp_path / name)
    with pytest.raises(UnreadableInputError, match="is a video, not an image; deblur it with `videodeblur video`"):
        read_image(clip)


def test_truncated_jpeg_is_a_typed_error_and_quiet(make_image, tmp_path, capfd):
    src = make_image("in.jpg", width=64, height=48)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(src.read_bytes()[:300])
    with pytest.raises(UnreadableInputError, match="cut.jpg"):
        read_image(cut)
    assert capfd.readouterr().err == ""  # OpenCV's own decoder warnings are silenced


def test_cli_folder_mode_prints_each_written_path(run_cli, make_image, tmp_path):
    make_image("shots/a.png", width=20, height=14)
    make_image("shots/b.jpg", width=22, height=16, mode="gray")
    result = run_cli("image", tmp_path / "shots", "-o", tmp_path / "out", "--device", "cpu", "--model", "lprn-fast")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [str(tmp_path / "out" / "a.png"), str(tmp_path / "out" / "b.jpg")]
    assert bgr_of(tmp_path / "out" / "b.jpg").shape == (16, 22)  # greyscale JPEG stays greyscale


def test_cli_folder_with_an_unreadable_file_writes_the_others_and_exits_1(run_cli, make_image, tmp_path):
    for name in ("a.png", "c.png"):
        make_image(tmp_path / "shots" / name, width=40, height=30)
    (tmp_path / "shots" / "b.png").write_bytes(b"not a png at all")
    result = run_cli("image", tmp_path / "shots", "-o", tmp_path / "out", "--device", "cpu", "--model", "lprn-fast")
    assert result.exit_code == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
    assert [line for line in result.stderr_lines if "b.png" in line]  # the bad one is named
    assert result.stderr_lines[-1] == ("videodeblur: error: 1 of 3 images could not be read (named above); "
                                       "the others were written")


def test_a_run_that_writes_nothing_leaves_no_output_folder_behind(run_cli, make_image, tmp_path):
    """Planning makes the output folder (a path that cannot be one fails before the model loads); a bad
    --model after it, or inputs that all fail to read, left that folder there, empty. A folder that was
    there before stays, and one the run wrote into (above) keeps its images."""
    for name in ("a.png", "b.png"):
        make_image(tmp_path / "shots" / name, width=40, height=30)
    bad_model = ("--device", "cpu", "--model", "bad-name")
    result = run_cli("image", tmp_path / "shots" / "a.png", tmp_path / "shots" / "b.png", "-o",
                     f"{tmp_path / 'new' / 'sub'}/", *bad_model)
    assert result.exit_code == 1 and "unknown model 'bad-name'" in result.stderr
    assert not (tmp_path / "new").exists()  # nor its parent, made with it
    assert run_cli("image", tmp_path / "shots", *bad_model).exit_code == 1  # the default FOLDER-deblurred/
    assert not (tmp_path / "shots-deblurred").exists()
    assert run_cli("image", tmp_path / "shots" / "a.png", "-o", tmp_path / "one" / "a.png", *bad_model).exit_code == 1
    assert not (tmp_path / "one").exists()
    (tmp_path / "kept").mkdir()
    assert run_cli("image", tmp_path / "shots", "-o", tmp_path / "kept", *bad_model).exit_code == 1
    assert (tmp_path / "kept").is_dir()
    for name in ("x.png", "y.png"):
        (tmp_path / "junk" / name).parent.mkdir(exist_ok=True)
        (tmp_path / "junk" / name).write_bytes(b"not a png at all")
    unread = run_cli("image", tmp_path / "junk", "-o", tmp_path / "none", "--device", "cpu", "--model", "lprn-fast")
    assert unread.exit_code == 1 and "2 of 2 images could not be read" in unread.stderr
    assert not (tmp_path / "none").exists()


def test_the_library_call_leaves_no_output_folder_for_a_run_that_wrote_nothing(engine, make_image, tmp_path):
    """deblur_images plans (making the folder) and runs: its first image unreadable, it raised and left
    the new folder behind, empty."""
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    make_image(tmp_path / "good.png", width=40, height=30)
    with pytest.raises(UnreadableInputError):
        deblur_images([tmp_path / "bad.png", tmp_path / "good.png"], tmp_path / "new" / "out", engine)
    assert not (tmp_path / "new").exists()


@pytest.mark.cuda
def test_cuda_fp16_matches_cpu_fp32(make_image, tmp_path):
    from videodeblur.pipeline import Engine, EngineOptions

    src = make_image("in.png", width=65, height=49)
    cpu = Engine.from_name("lprn-fast", EngineOptions(device="cpu", precision="fp32", batch_size=1))
    gpu = Engine.from_name("lprn-fast", EngineOptions(device="cuda", precision="fp16", batch_size=1))
    a = bgr_of(deblur_image_file(src, tmp_path / "cpu.png", cpu))
    b = bgr_of(deblur_image_file(src, tmp_path / "gpu.png", gpu))
    assert a.shape == b.shape == (49, 65, 3)
    assert psnr(a, b) > 40  # fp16 rounding only


def test_cli_tile_keeps_size(run_cli, make_image, tmp_path):
    src = make_image("big.png", width=200, height=130)
    result = run_cli("image", src, "-o", tmp_path / "out.png", "--device", "cpu", "--model", "lprn-fast",
                     "--tile", 96)
    assert result.exit_code == 0, result.stderr
    assert bgr_of(tmp_path / "out.png").shape == (130, 200, 3)


def test_grey_with_alpha_goes_out_as_grey_with_alpha(tmp_path):
    grey = clip_frame(0, 12, 8)[..., 1]
    alpha = np.full((8, 12), 77, np.uint8)
    image = Image(rgb=cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), grey=True, alpha=alpha)
    path = write_image(tmp_path / "ga.png", image)
    assert path.read_bytes()[24:26] == b"\x08\x04"  # IHDR: 8 bits, colour type 4 (grey + alpha)
    out = bgr_of(path)  # OpenCV hands grey + alpha back as BGRA
    assert np.array_equal(out[..., 0], grey) and np.array_equal(out[..., 2], grey)
    assert np.array_equal(out[..., 3], alpha)
    webp = bgr_of(write_image(tmp_path / "ga.webp", image))  # WebP has no grey + alpha: RGBA, equal channels
    assert webp.shape == (8, 12, 4) and np.array_equal(webp[..., 3], alpha)


# ------------------------------------------------------------------ grey + alpha, dpi, warnings, links

def _grey_alpha(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    grey = clip_frame(0, width, height)[..., 1]
    alpha = np.tile(np.linspace(10, 250, width).round().astype(np.uint8), (height, 1))
    return grey, alpha


def _grey_alpha_image(width: int, height: int, bits: int = 8) -> Image:
    """A grey + alpha image; at 16 bits its samples have low bytes of their own (the high bytes are the 8-bit ones)."""
    grey, alpha = _grey_alpha(width, height)
    deep = np.dstack([grey, alpha]).astype(np.uint16) * 256 + np.array([77, 5], np.uint16) if bits == 16 else None
    return Image(rgb=cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), grey=True, alpha=alpha, deep=deep)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_grey_alpha_is_written_and_read_back_sample_for_sample(tmp_path, ext, bits):
    """FFmpeg's PNG and TIFF codecs write and read grey + alpha (OpenCV writes neither, and drops a TIFF's
    alpha): every sample comes back, 16-bit ones too. The odd width pads the frame's rows."""
    image = _grey_alpha_image(37, 21, bits)
    path = write_image(tmp_path / f"ga{ext}", image, warn=pytest.fail)
    back = read_image(path)
    assert back.grey and np.array_equal(back.rgb, image.rgb) and np.array_equal(back.alpha, image.alpha)
    assert back.deep is None if bits == 8 else back.deep.dtype == np.uint16 and np.array_equal(back.deep, image.deep)
    samples = image.deep if bits == 16 else np.dstack([image.rgb[..., 0], image.alpha])
    by_opencv = bgr_of(path)  # another decoder: libpng's BGRA with equal colour channels; libtiff's 8-bit grey
    if ext == ".png":
        assert path.read_bytes()[24:26] == bytes([bits, 4])  # IHDR: bit depth, colour type 4 (grey + alpha)
        assert np.array_equal(by_opencv[..., 0], samples[..., 0]) and np.array_equal(by_opencv[..., 3], samples[..., 1])
    else:
        assert tiff_samples_per_pixel(path.read_bytes()) == 2 and np.array_equal(by_opencv, image.rgb[..., 0])


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_grey_alpha_in_grey_alpha_out(engine, tmp_path, ext):
    """A grey + alpha PNG or TIFF comes back grey + alpha: grey stays grey, alpha byte for byte."""
    source = _grey_alpha_image(40, 30)
    src = write_image(tmp_path / f"la{ext}", source)
    dst = deblur_image_file(src, tmp_path / f"out{ext}", engine, warn=pytest.fail)
    out = read_image(dst)
    assert out.grey and out.rgb.shape == (30, 40, 3)
    want = cv2.cvtColor(expected(engine, source.rgb), cv2.COLOR_RGB2GRAY)
    assert np.array_equal(out.rgb[..., 0], want)  # lossless: exactly the network's grey
    assert np.array_equal(out.alpha, source.alpha)


def test_a_sixteen_bit_grey_alpha_png_comes_out_sixteen_bit_grey_alpha(engine, tmp_path):
    grey, alpha = _grey_alpha(36, 20)
    deep = np.dstack([grey.astype(np.uint16) * 257 + 100, alpha.astype(np.uint16) * 251])
    rows = deep.astype(">u2").reshape(20, -1).view(np.uint8)
    raw = np.hstack([np.zeros((20, 1), np.uint8), rows]).tobytes()
    src = tmp_path / "la16.png"
    src.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 36, 20, 16, 4, 0, 0, 0))
                    + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))
    dst = deblur_image_file(src, tmp_path / "out.png", engine, warn=pytest.fail)
    assert dst.read_bytes()[24:26] == b"\x10\x04"  # 16 bits, grey + alpha
    out = bgr_of(dst)
    assert out.dtype == np.uint16 and np.array_equal(out[..., 3], deep[..., 1])
    assert np.all((out[..., 0].astype(np.int64) - deep[..., 0]) % 257 == 0)  # the source's low bits kept
    assert (out[..., 0] != deep[..., 0]).any()  # and the network's change added


def test_a_sixteen_bit_grey_alpha_tiff_comes_out_sixteen_bit_grey_alpha(engine, tmp_path):
    source = _grey_alpha_image(36, 20, bits=16)
    src = write_image(tmp_path / "la16.tif", source)
    out = read_image(deblur_image_file(src, tmp_path / "out.tif", engine, warn=pytest.fail)).deep
    assert out.dtype == np.uint16 and np.array_equal(out[..., 1], source.deep[..., 1])
    assert np.all((out[..., 0].astype(np.int64) - source.deep[..., 0]) % 257 == 0)  # the source's low bits kept
    assert (out[..., 0] != source.deep[..., 0]).any()  # and the network's change added


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_grey_alpha_outputs_keep_their_metadata(tmp_path, ext):
    """A PNG's chunks, a TIFF's ICC profile and the dpi reach a grey + alpha output as any other; FFmpeg's
    PNG encoder writes a pixel-size chunk of its own, which then holds the dpi (one pHYs, not two)."""
    text = png_chunk(b"tEXt", b"Title\x00grey and alpha")
    phys = png_chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1))  # 300 dpi
    icc = b"\x00\x00\x01\x00not a real ICC profile, carried byte for byte" * 3
    image = dataclasses.replace(_grey_alpha_image(24, 16), png_metadata=((b"tEXt", text), (b"pHYs", phys)),
                                tiff_icc=icc, dpi=(300.0, 300.0))
    path = write_image(tmp_path / f"ga{ext}", image, warn=pytest.fail)
    back = read_image(path)
    assert back.dpi == pytest.approx((300, 300), abs=0.01) and np.array_equal(back.alpha, image.alpha)
    if ext == ".png":
        assert sorted(back.png_metadata) == [(b"pHYs", phys), (b"tEXt", text)]
    else:
        assert back.tiff_icc == icc


@pytest.mark.parametrize("ext", [".png", ".tif"])
def test_a_grey_alpha_output_keeps_a_dpi_that_differs_across_and_down(tmp_path, ext):
    """FFmpeg's PNG encoder takes one density for both directions: the vertical 150 was lost."""
    image = dataclasses.replace(_grey_alpha_image(24, 16), dpi=(300.0, 150.0))
    assert read_image(write_image(tmp_path / f"ga{ext}", image, warn=pytest.fail)).dpi == pytest.approx(
        (300, 150), abs=0.02)  # PNG: whole pixels per metre


def test_a_nonsense_dpi_is_not_carried(engine, tmp_path):
    """4294967295 dpi (a broken field) crashed the PNG, TIFF and BMP writers after the network had run."""
    src = tmp_path / "in.tif"
    PILImage.fromarray(clip_frame(0, 40, 24)).save(src, dpi=(4294967295, 4294967295))
    assert read_image(src).dpi is None
    for ext in (".png", ".tif", ".bmp"):
        assert read_image(deblur_image_file(src, tmp_path / f"out{ext}", engine, warn=pytest.fail)).dpi is None


@pytest.mark.parametrize("ext", [".jpg", ".tif"])
def test_a_cmyk_pictures_colour_profile_is_not_given_to_its_rgb_output(engine, tmp_path, ext):
    """OpenCV reads a print JPEG's or TIFF's CMYK as RGB: its CMYK profile would misdescribe the output
    (colour managed viewers failed on it; a TIFF to TIFF copy still carried it); an RGB profile is
    carried as before."""
    def profile(space: bytes) -> bytes:
        return b"\x00\x00\x02\x00" + b"lcms" + b"\x02\x10\x00\x00" + b"prtr" + space + b"Lab " + b"\x00" * 100

    src = tmp_path / f"print{ext}"
    PILImage.fromarray(clip_frame(0, 40, 24)).convert("CMYK").save(src, icc_profile=profile(b"CMYK"))
    with PILImage.open(deblur_image_file(src, tmp_path / f"out{ext}", engine, warn=pytest.fail)) as out:
        assert out.mode == "RGB" and "icc_profile" not in out.info
    rgb = tmp_path / "photo.jpg"
    PILImage.fromarray(clip_frame(0, 40, 24)).save(rgb, icc_profile=profile(b"RGB "))
    with PILImage.open(deblur_image_file(rgb, tmp_path / "photo-out.jpg", engine, warn=pytest.fail)) as out:
        assert out.info.get("icc_profile") == profile(b"RGB ")


@pytest.mark.parametrize("orientation, turn", [(6, lambda a: np.rot90(a, -1)), (8, lambda a: np.rot90(a, 1)),
                                               (3, lambda a: a[::-1, ::-1]), (2, lambda a: a[:, ::-1])])
def test_a_png_turned_by_its_exif_comes_out_upright(engine, tmp_path, orientation, turn):
    """OpenCV turns a JPEG by its EXIF orientation, not a PNG by its eXIf chunk: a phone's PNG went
    sideways into a JPEG. Turned on reading now, and the kept chunk says upright (1)."""
    exif = b"MM\x00\x2a\x00\x00\x00\x08" + b"\x00\x01" + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0) + b"\x00" * 4
    stored = clip_frame(0, 40, 24)
    ok, png = cv2.imencode(".png", cv2.cvtColor(stored, cv2.COLOR_RGB2BGR))
    src = tmp_path / "phone.png"
    src.write_bytes(insert_png_chunks(png.tobytes(), [(b"eXIf", png_chunk(b"eXIf", exif))]))
    upright = np.ascontiguousarray(turn(stored))
    assert np.array_equal(read_image(src).rgb, upright)
    out = deblur_image_file(src, tmp_path / "out.png", engine, warn=pytest.fail)
    assert png_orientation(out.read_bytes()) == 1 and read_image(out).rgb.shape == upright.shape
    assert np.array_equal(read_image(deblur_image_file(src, tmp_path / "out.jpg", engine, warn=pytest.fail)).rgb.shape,
                          upright.shape)


def _with_dpi_and_comment(src: Path, dpi: int, **extra) -> None:
    with PILImage.open(src) as im:
        im.save(src, dpi=(dpi, dpi), **extra)


@pytest.mark.parametrize("out_ext", [".jpg", ".png", ".tif", ".bmp"])
def test_a_jpeg_keeps_its_dpi_and_comment_and_gives_its_dpi_to_any_format(engine, make_image, tmp_path, out_ext):
    src = make_image("scan.jpg", width=48, height=32)
    _with_dpi_and_comment(src, 300, comment=b"scanned at 300 dpi", quality=95)
    dst = deblur_image_file(src, tmp_path / f"out{out_ext}", engine, warn=pytest.fail)
    with PILImage.open(dst) as out:
        assert out.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        if out_ext == ".jpg":
            assert out.info["comment"] == b"scanned at 300 dpi"
    assert bgr_of(dst).shape[:2] == (32, 48)  # still decodes as before


@pytest.mark.parametrize("ext", [".png", ".tif", ".bmp"])
def test_dpi_is_kept_png_tiff_bmp(engine, make_image, tmp_path, ext):
    src = make_image("in.png", width=40, height=24)
    if ext != ".png":
        cv2.imwrite(str(src.with_suffix(ext)), bgr_of(src))
        src = src.with_suffix(ext)
    _with_dpi_and_comment(src, 150)
    with PILImage.open(src) as im:
        dpi = im.info["dpi"]  # 150 as the format stores it (PNG and BMP: whole pixels per metre)
    assert dpi == pytest.approx((150, 150), abs=0.02)
    dst = deblur_image_file(src, tmp_path / f"out{ext}", engine, warn=pytest.fail)
    with PILImage.open(dst) as out:
        assert out.info["dpi"] == dpi
    assert np.array_equal(cv2.cvtColor(bgr_of(dst), cv2.COLOR_BGR2RGB), expected(engine, clip_frame(0, 40, 24)))


def test_an_rgba_tiff_says_its_fourth_sample_is_alpha(engine, tmp_path):
    """OpenCV wrote four samples without ExtraSamples: libtiff readers warned ("Sum of Photometric
    type-related color channels and ExtraSamples doesn't match"), and an editor may take the fourth
    for an unnamed channel. It is tagged unassociated alpha, and reads back as it was."""
    rgba = np.dstack([clip_frame(5, 30, 20), np.tile(np.linspace(0, 255, 30, dtype=np.uint8), (20, 1))])
    PILImage.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    out = deblur_image_file(tmp_path / "in.png", tmp_path / "out.tif", engine)
    with PILImage.open(out) as written:
        assert written.mode == "RGBA" and written.tag_v2.get(338) in (2, (2,))
        assert np.array_equal(np.asarray(written)[..., 3], rgba[..., 3])


def test_a_tiff_keeps_its_colour_profile(engine, tmp_path):
    profile = b"\x00\x00\x01\x00not a real ICC profile, carried byte for byte" * 3
    src = tmp_path / "in.tif"
    PILImage.fromarray(clip_frame(0, 40, 24)).save(src, icc_profile=profile, dpi=(240, 240))
    dst = deblur_image_file(src, tmp_path / "out.tif", engine, warn=pytest.fail)
    with PILImage.open(dst) as out:
        assert out.info.get("icc_profile") == profile and out.info["dpi"] == pytest.approx((240, 240))
    assert np.array_equal(cv2.cvtColor(bgr_of(dst), cv2.COLOR_BGR2RGB), expected(engine, clip_frame(0, 40, 24)))


@pytest.mark.parametrize("mode,ext,said", [
    ("rgba", ".bmp", ".bmp cannot hold the alpha channel of {src}; it is left out (.png, .tiff, .webp, .avif keep it)"),
    ("la", ".jpg", ".jpg cannot hold the alpha channel of {src}; it is left out (.png, .tiff, .webp, .avif keep it)"),
    ("deep", ".webp", ".webp cannot hold 16 bits per sample of {src}; "
                      "it is written at 8 bits (.png and .tiff keep 16)"),
    ("deep_rgba", ".jpg", ".jpg cannot hold the alpha channel or 16 bits per sample of {src}; alpha is left out and "
                          "8 bits are written (.png and .tiff keep both)"),
    ("rgba", ".webp", None), ("deep", ".tif", None), ("la", ".png", None),
])
def test_what_the_output_format_cannot_hold_is_said_in_one_line(engine, make_image, tmp_path, mode, ext, said):
    src = tmp_path / "in.png"
    if mode == "rgba":
        make_image(src, width=24, height=16, mode="rgba")
    elif mode == "la":
        write_image(src, _grey_alpha_image(24, 16))
    else:
        deep = clip_frame(0, 24, 16).astype(np.uint16) * 257
        cv2.imwrite(str(src), np.dstack([deep, np.full((16, 24), 9000, np.uint16)]) if mode == "deep_rgba" else deep)
    lines: list[str] = []
    dst = deblur_image_file(src, tmp_path / f"out{ext}", engine, warn=lines.append)
    assert lines == ([] if said is None else [f"{dst}: " + said.format(src=src)])


def test_cli_says_what_an_output_format_cannot_hold(run_cli, make_image, tmp_path):
    src = make_image("rgba.png", width=24, height=16, mode="rgba")
    dst = tmp_path / "o.jpg"
    result = run_cli("image", src, "-o", dst, "--device", "cpu", "--model", "lprn-fast")
    assert result.exit_code == 0, result.stderr
    assert result.stderr_lines == [f"videodeblur: warning: {dst}: .jpg cannot hold the alpha channel of {src}; "
                                   "it is left out (.png, .tiff, .webp, .avif keep it)"]
    assert result.stdout.splitlines() == [str(dst)]


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_an_output_that_is_a_link_of_the_input_is_refused(run_cli, make_image, tmp_path, link):
    src = make_image("in.png", width=16, height=16)
    other = tmp_path / "other.png"
    (os.link if link == "hard" else os.symlink)(src, other)
    before = src.read_bytes()
    with pytest.raises(OutputError, match="choose another output path") as info:
        plan_images([other], src)
    assert ("a hard link to the same file" in str(info.value)) == (link == "hard")
    result = run_cli("image", other, "-o", src, "--device", "cpu")
    assert result.exit_code == 1
    assert result.stderr_lines[-1].startswith(f"videodeblur: error: output {src} is the input")
    assert src.read_bytes() == before


def test_a_folder_output_that_would_overwrite_another_input_through_a_hard_link_is_refused(make_image, tmp_path):
    a = make_image("shots/a.png", width=16, height=16)
    b = make_image("b.png", width=16, height=16)
    (tmp_path / "out").mkdir()
    os.link(b, tmp_path / "out" / "a.png")  # writing a's output would rewrite b before it is read
    with pytest.raises(OutputError, match=f"output {tmp_path / 'out' / 'a.png'} is the input {b} \\(a hard link"):
        plan_images([a, b], tmp_path / "out")


def test_images_in_sub_folders_are_counted_in_one_warning(make_image, tmp_path):
    make_image("shots/a.png", width=16, height=16)
    make_image("shots/day2/b.png", width=16, height=16)
    make_image("shots/day2/raw/c.JPG", width=16, height=16)
    (tmp_path / "shots" / "day2" / "notes.txt").write_text("not an image")
    said: list[str] = []
    jobs = plan_images([tmp_path / "shots"], tmp_path / "shots" / "out", warn=said.append)
    assert [job.src.name for job in jobs] == ["a.png"]
    assert said == [f"{tmp_path / 'shots'}: 2 images in sub-folders left out (folders are read one level deep; "
                    "give a sub-folder as an input of its own to deblur its images)"]
    make_image("shots/out/a.png", width=16, height=16)  # an earlier run's output inside the input: not counted
    said.clear()
    plan_images([tmp_path / "shots"], tmp_path / "shots" / "out", warn=said.append)
    assert len(said) == 1 and ": 2 images" in said[0]
    said.clear()
    plan_images([tmp_path / "shots" / "day2" / "raw"], tmp_path / "o2", warn=said.append)
    assert said == []
    shutil.rmtree(tmp_path / "shots" / "out")
    plan_images([tmp_path / "shots", tmp_path / "shots" / "day2"], tmp_path / "o3", warn=said.append)
    assert said == [f"{tmp_path / 'shots' / 'day2'}: 1 image in sub-folders left out (folders are read one level "
                    "deep; give a sub-folder as an input of its own to deblur its images)"]  # day2 is an input


class Inverter:
    """A stand-in engine whose output differs from any input, so a file written over its source shows."""

    def __init__(self) -> None:
        self.calls = 0

    def process(self, frames: np.ndarray) -> np.ndarray:
        self.calls += 1
        return 255 - frames


@pytest.mark.parametrize("name", ["same", "spelled", "hard", "symbolic"])
def test_deblur_image_file_refuses_to_write_over_its_input(make_image, tmp_path, name):
    src = make_image("in.png", width=16, height=16)
    dst = {"same": src, "spelled": tmp_path / "." / "in.png", "hard": tmp_path / "hard.png",
           "symbolic": tmp_path / "sym.png"}[name]
    if name in ("hard", "symbolic"):
        (os.link if name == "hard" else os.symlink)(src, dst)
    before, engine = src.read_bytes(), Inverter()
    with pytest.raises(OutputError, match="is the input file"):
        deblur_image_file(dst if name == "symbolic" else src, src if name == "symbolic" else dst, engine)
    assert src.read_bytes() == before and engine.calls == 0  # refused before the network ran


def test_write_image_refuses_the_file_its_image_was_read_from(make_image, tmp_path):
    src = make_image("in.png", width=16, height=16)
    os.link(src, tmp_path / "hard.png")
    before, image = src.read_bytes(), read_image(src)
    with pytest.raises(OutputError, match="is the input file"):
        write_image(tmp_path / "hard.png", image.with_rgb(255 - image.rgb))
    assert src.read_bytes() == before
    assert read_image(write_image(tmp_path / "new.png", image)).rgb.tolist() == image.rgb.tolist()


def test_overlapping_quiet_opencv_users_leave_the_callers_log_level(make_image, monkeypatch):
    """OpenCV's log level is one per process: an image read on one thread and a capture opened on
    another, overlapping (the reader leaves first), left it silent for good; each saved and restored it."""
    from videodeblur.video.capture import _quiet_opencv as capture_quiet

    logging = cv2.utils.logging
    src = make_image("a.png", width=8, height=8)
    decoding, capture_in, reader_out = threading.Event(), threading.Event(), threading.Event()
    real_imdecode, seen = cv2.imdecode, []

    def imdecode(data, flags):  # the reader, inside its quiet section, waits for the capture to enter its own
        decoding.set()
        capture_in.wait(10)
        return real_imdecode(data, flags)

    def capture_user() -> None:
        decoding.wait(10)
        with capture_quiet():
            capture_in.set()
            reader_out.wait(10)
            seen.append(logging.getLogLevel())  # the reader has left; this user is still inside

    monkeypatch.setattr(cv2, "imdecode", imdecode)
    previous = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_WARNING)
    try:
        user = threading.Thread(target=capture_user)
        user.start()
        assert read_image(src).rgb.shape == (8, 8, 3)
        reader_out.set()
        user.join(10)
        assert seen == [logging.LOG_LEVEL_SILENT]
        assert logging.getLogLevel() == logging.LOG_LEVEL_WARNING
    finally:
        logging.setLogLevel(previous)


@pytest.mark.parametrize("suffix", [".webp", ".avif"])
@pytest.mark.parametrize("orientation", range(2, 9))
def test_a_turned_webp_or_avif_is_read_upright_as_the_same_jpeg_is(tmp_path: Path, suffix: str, orientation: int) -> None:
    """A WebP's EXIF orientation and an AVIF's rotation and mirror boxes (Pillow writes the EXIF
    orientation as irot/imir) turn the picture as a JPEG's EXIF does: both came out on their side."""
    from PIL import features

    if suffix == ".avif" and not features.check("avif"):
        pytest.skip("this Pillow has no AVIF support")
    picture = PILImage.fromarray(clip_frame(0, 48, 32))

    def exif() -> PILImage.Exif:  # one each: Pillow's AVIF writer takes the orientation out of the one it is given
        tags = PILImage.Exif()
        tags[0x0112] = orientation
        return tags

    src, ref = tmp_path / f"turned{suffix}", tmp_path / "turned.jpg"
    picture.save(src, exif=exif(), **({"lossless": True} if suffix == ".webp" else {"quality": 95}))
    picture.save(ref, exif=exif(), quality=95)
    got, want = read_image(src).rgb, read_image(ref).rgb
    assert got.shape == want.shape == ((32, 48, 3) if orientation < 5 else (48, 32, 3))
    assert psnr(got, want) > 25  # the same picture, turned the same way (a wrong turn scores ~10 dB)


@pytest.mark.parametrize("name", ["moving.gif", "moving.webp", "pages.tif", "moving.png"])
def test_an_animation_or_a_multi_page_file_says_only_its_first_picture_is_deblurred(tmp_path: Path, name: str) -> None:
    """Three pictures in, one out: said once, not silently (it gave a single still without a word).
    A GIF, which is read but not written, gets a PNG beside it when no output is named."""
    pictures = [PILImage.fromarray(clip_frame(i * 7, 40, 24)) for i in range(3)]
    src = tmp_path / name
    pictures[0].save(src, save_all=True, append_images=pictures[1:], **({"lossless": True} if name.endswith(".webp") else {}))
    said: list[str] = []
    image = read_image(src, warn=said.append)
    assert said == [f"{src} holds 3 pictures (an animation or pages): only the first is deblurred"]
    assert image.rgb.shape == (24, 40, 3) and psnr(image.rgb, clip_frame(0, 40, 24)) > 20
    (job,) = plan_images([src], None)
    assert job.dst == tmp_path / f"{Path(name).stem}-deblurred{'.png' if name.endswith('.gif') else Path(name).suffix}"
    single = tmp_path / f"one{Path(name).suffix}"
    pictures[0].save(single)
    read_image(single, warn=pytest.fail)  # one picture: nothing to say


def test_a_half_transparent_rgba_tiff_keeps_its_colour_through_any_number_of_passes(tmp_path: Path) -> None:
    """OpenCV reads an 8-bit RGBA TIFF with straight alpha (ExtraSamples 2, as ours and PIL's are)
    through libtiff's RGBA interface, which multiplies the colour by the alpha: half-transparent pixels
    came back half as bright, and darker again through each pass. A CMYK TIFF's four samples are not RGBA."""
    rgb = clip_frame(0, 40, 24)
    image = Image(rgb=rgb, alpha=np.full((24, 40), 128, np.uint8))
    path = tmp_path / "a.tif"
    for _ in range(2):
        write_image(path, image)
        back = read_image(path)
        assert np.array_equal(back.rgb, rgb) and np.array_equal(back.alpha, image.alpha)
        image = dataclasses.replace(back, source="")
    PILImage.fromarray(np.full((24, 40, 4), (0, 200, 0, 0), np.uint8), "CMYK").save(tmp_path / "cmyk.tif")
    cmyk = read_image(tmp_path / "cmyk.tif")
    assert tuple(cmyk.rgb[0, 0]) == (255, 55, 255)  # magenta: read by OpenCV as before, not taken for RGBA
    # nor given an alpha channel: OpenCV hands it over as BGRA, and an opaque alpha was written into a
    # PNG or TIFF output, or said to be left out of a JPEG one
    assert cmyk.alpha is None
    write_image(tmp_path / "cmyk.jpg", cmyk, warn=pytest.fail)


def _exif_with_thumbnail(orientation: int, thumbnail: bytes) -> bytes:
    """Little-endian EXIF TIFF data as a camera writes it: IFD0 (orientation, make) and IFD1 pointing at
    a JPEG ``thumbnail`` of the picture as stored (not turned)."""
    ifd0 = struct.pack("<H", 2) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) \
        + struct.pack("<HHI4s", 0x010F, 2, 4, b"Cam\x00")
    ifd1_at = 8 + len(ifd0) + 4
    ifd1 = struct.pack("<H", 2) + struct.pack("<HHII", 0x0201, 4, 1, ifd1_at + 2 + 24 + 4) \
        + struct.pack("<HHII", 0x0202, 4, 1, len(thumbnail))
    return b"II*\x00" + struct.pack("<I", 8) + ifd0 + struct.pack("<I", ifd1_at) + ifd1 + struct.pack("<I", 0) + thumbnail


@pytest.mark.parametrize("out_ext", [".jpg", ".png", ".webp"])
@pytest.mark.parametrize("orientation", [6, 1])
def test_a_turned_photos_thumbnail_is_not_kept_on_its_side(engine, tmp_path, out_ext, orientation):
    """A phone keeps a small picture of the photo as stored in its EXIF (IFD1), turned as the main one is
    by the orientation; the output is turned upright and marked so (orientation 1), and the thumbnail
    kept beside that showed on its side wherever a viewer shows thumbnails. Of an upright photo it is kept."""
    _, thumb = cv2.imencode(".jpg", cv2.cvtColor(clip_frame(0, 16, 8), cv2.COLOR_RGB2BGR))
    tiff = _exif_with_thumbnail(orientation, thumb.tobytes())
    plain = cv2.imencode(".jpg", cv2.cvtColor(clip_frame(0, 40, 24), cv2.COLOR_RGB2BGR))[1].tobytes()
    src = tmp_path / "phone.jpg"
    src.write_bytes(plain[:2] + b"\xff\xe1" + struct.pack(">H", 8 + len(tiff)) + b"Exif\x00\x00" + tiff + plain[2:])
    dst = deblur_image_file(src, tmp_path / f"out{out_ext}", engine, warn=pytest.fail)
    with PILImage.open(dst) as out:
        exif = out.getexif()
        assert out.size == ((24, 40) if orientation == 6 else (40, 24))
        assert (exif.get(0x0112), exif.get(0x010F)) == (1, "Cam")
        assert bool(exif.get_ifd(ExifTags.IFD.IFD1)) == (orientation == 1)


@pytest.mark.parametrize("bits", [10, 12])
def test_a_10_or_12_bit_avif_is_read_at_its_brightness(engine, tmp_path, bits):
    """OpenCV hands a 10- or 12-bit AVIF (an HDR phone's or a browser's export) over as uint16 samples
    at that depth (1023 or 4095 at most): read as 16-bit ones, the network saw a black picture (their
    high byte: 0 to 15) and every output was black."""
    rgb = clip_frame(0, 64, 48)
    top = (1 << bits) - 1
    samples = (cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR).astype(np.int32) * top + 127) // 255
    src = tmp_path / f"deep{bits}.avif"
    if not cv2.imwrite(str(src), samples.astype(np.uint16), [cv2.IMWRITE_AVIF_DEPTH, bits, cv2.IMWRITE_AVIF_QUALITY, 100]):
        pytest.skip("this OpenCV writes no AVIF")
    image = read_image(src)
    assert psnr(image.rgb, rgb) > 40  # the picture, not black (~10 dB)
    out = bgr_of(deblur_image_file(src, tmp_path / "out.png", engine, warn=pytest.fail))
    assert out.dtype == np.uint16 and psnr(out, samples * 65535.0 / top, peak=65535.0) > 30


def test_an_empty_input_or_output_path_is_an_error_not_the_current_folder(make_image, tmp_path, monkeypatch, run_cli):
    """``videodeblur image "$SHOT" -o "$OUT"`` with a variable unset gives an empty path, which pathlib
    reads as "." : the whole current folder was deblurred into a new folder beside it, or the output
    written into it, without a word."""
    make_image("cwd/in.png", width=16, height=16)
    monkeypatch.chdir(tmp_path / "cwd")
    with pytest.raises(InputNotFoundError, match="empty"):
        plan_images([""], None)
    with pytest.raises(OutputError, match="empty"):
        plan_images(["in.png"], "")
    for args in (("",), ("in.png", "-o", "")):
        result = run_cli("image", *args, "--device", "cpu")
        assert result.exit_code == 1 and len(result.stderr_lines) == 1 and "empty" in result.stderr, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cwd"] and os.listdir(tmp_path / "cwd") == ["in.png"]


def _xmp(orientation_form: str, orientation: int) -> bytes:
    """An XMP packet recording ``orientation`` as an attribute or an element, as Lightroom and
    Photoshop write it beside the EXIF's."""
    value = (f'tiff:Orientation="{orientation}"/>' if orientation_form == "attribute" else
             f'><tiff:Orientation>{orientation}</tiff:Orientation></rdf:Description>')
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" ' + value + '</rdf:RDF></x:xmpmeta>').encode()


@pytest.mark.parametrize("form", ["attribute", "element"])
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_a_turned_photos_xmp_orientation_is_set_upright_with_the_exif(engine, tmp_path, form, ext):
    """An editor's export records the orientation in XMP too; the EXIF's was set to 1 with the pixels
    turned, the XMP's kept, and a viewer that reads XMP turned the upright picture a second time."""
    picture = clip_frame(0, 40, 24)
    if ext == ".jpg":
        plain = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))[1].tobytes()
        xmp = b"http://ns.adobe.com/xap/1.0/\x00" + _xmp(form, 6)
        segments = _exif_segment(6, b"2026:12:02 10:00:00\x00") + b"\xff\xe1" + struct.pack(">H", 2 + len(xmp)) + xmp
        data = plain[:2] + segments + plain[2:]
    else:
        plain = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))[1].tobytes()
        exif = _exif_segment(6, b"2026:12:02 10:00:00\x00")[10:]  # its TIFF data
        chunks = [(b"eXIf", png_chunk(b"eXIf", exif)),
                  (b"iTXt", png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + _xmp(form, 6)))]
        data = insert_png_chunks(plain, chunks)
    src = tmp_path / f"export{ext}"
    src.write_bytes(data)
    out = deblur_image_file(src, tmp_path / f"out{ext}", engine, warn=pytest.fail).read_bytes()
    assert bgr_of(tmp_path / f"out{ext}").shape[:2] == (40, 24)  # turned upright
    assert _xmp(form, 1) in out and _xmp(form, 6) not in out
    if ext == ".png":
        with PILImage.open(tmp_path / "out.png") as written:
            written.load()  # every chunk's CRC checked


def test_two_inputs_of_one_name_leave_no_empty_output_folder(make_image, tmp_path):
    """The plan fails before anything is written; the output folder was made first and left empty."""
    inputs = [make_image("a/in.png", width=16, height=16), make_image("b/in.png", width=16, height=16)]
    with pytest.raises(OutputError, match="would both be written to"):
        plan_images(inputs, tmp_path / "out" / "new")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("depth", [1, 8, 16])
def test_a_grey_pngs_transparent_level_is_kept_as_alpha(engine, tmp_path, depth):
    """A grey PNG can make one grey level transparent (a tRNS chunk), as a palette or RGB one can;
    OpenCV keeps the other two as alpha but drops this one, and the transparent part came out opaque."""
    grey = np.where(np.arange(30)[None, :].repeat(20, 0) < 12, 0, 200).astype(np.uint8)
    grey[:, 20:] = 255
    src = tmp_path / f"grey{depth}.png"
    if depth == 1:
        PILImage.fromarray(grey).convert("1", dither=PILImage.Dither.NONE).save(src, transparency=0)  # black: see-through
        transparent = grey < 128
    else:
        samples = grey.astype(np.uint16) * 257 if depth == 16 else grey
        key = int(samples[0, 0])
        src.write_bytes(insert_png_chunks(cv2.imencode(".png", samples)[1].tobytes(),
                                          [(b"tRNS", png_chunk(b"tRNS", struct.pack(">H", key)))]))
        transparent = samples == key
    image = read_image(src, warn=pytest.fail)
    assert image.grey and image.alpha is not None
    assert np.array_equal(image.alpha == 0, transparent) and set(np.unique(image.alpha)) == {0, 255}
    out = deblur_image_file(src, tmp_path / "out.png", engine, warn=pytest.fail)
    assert out.read_bytes()[25] == 4  # a grey + alpha PNG (IHDR's colour type)
    assert np.array_equal(read_image(out).alpha == 0, transparent)
