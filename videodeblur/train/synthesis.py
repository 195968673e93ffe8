"""Blur synthesis the way real blur happens: in linear light, then sensor noise and compression.

All functions are pure (numpy in, numpy out) and take an explicit ``np.random.Generator`` so a pair is
reproducible from its seed. Images are float32 H×W×3 in [0, 1] (sRGB-encoded) unless said otherwise.

- GoPro-style: average N consecutive frames of real video in linear light, as a long exposure would
  integrate photons (the GoPro dataset did this at 240 fps).
- Camera shake: a random 2-D trajectory (a random walk with inertia) rasterised into a normalised
  kernel and convolved with the sharp image in linear light.
- Moving camera over a photo: a random affine motion (pan, roll, zoom) per frame interval, and
  optionally one object moving on its own across it, rendered at ``upsample`` × the frame rate and
  averaged in linear light: the GoPro recipe where the motion is known exactly, so any sharp photo
  becomes a scene with spatially varying blur and occlusion edges.
- Sensor noise: Poisson (shot) + Gaussian (read) noise in linear light; then optional JPEG or H.264
  (the codec the product reads: 4:2:0 chroma, blocking and ringing as video really has them).
"""
from __future__ import annotations

import dataclasses
from fractions import Fraction

import av
import cv2
import numpy as np

__all__ = [
    "srgb_to_linear",
    "linear_to_srgb",
    "average_frames",
    "shake_kernel",
    "defocus_kernel",
    "apply_kernel",
    "add_sensor_noise",
    "jpeg_roundtrip",
    "h264_roundtrip",
    "to_uint8",
    "recolour",
    "optical_flow",
    "interpolate",
    "gopro_blur",
    "gopro_blurs",
    "Motion",
    "random_motion",
    "moving_object",
    "render_motion_blur",
]


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """Undo the sRGB transfer (close to BT.709's for video; the differences are below 8-bit noise)."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055).astype(np.float32)


def average_frames(frames: np.ndarray) -> np.ndarray:
    """GoPro-style blur: mean of N consecutive sRGB frames (N×H×W×3) taken in linear light."""
    if frames.ndim != 4 or frames.shape[0] < 1:
        raise ValueError(f"expected N×H×W×3 frames, got shape {frames.shape}")
    return linear_to_srgb(srgb_to_linear(frames).mean(axis=0))


def shake_kernel(rng: np.random.Generator, size: int = 21, *, steps: int = 64, intensity: float | None = None
                 ) -> np.ndarray:
    """A normalised size×size blur kernel from a random camera-shake trajectory.

    The trajectory is a random walk whose velocity changes smoothly (inertia) with occasional jerks,
    like a hand holding a camera during one exposure; it is rasterised with bilinear splatting and
    centred on its centre of mass so the blurred image is not shifted.
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and >= 3, got {size}")
    intensity = rng.uniform(0.2, 1.0) if intensity is None else intensity
    velocity = rng.normal(size=2)
    velocity /= np.linalg.norm(velocity) + 1e-8
    points = np.zeros((steps, 2))
    pos = np.zeros(2)
    for i in range(steps):
        jerk = rng.normal(size=2) * 0.4 * intensity
        if rng.random() < 0.05 * intensity:
            jerk += rng.normal(size=2) * 2.0
        velocity = 0.85 * velocity + jerk
        pos = pos + velocity / steps
        points[i] = pos
    points -= points.mean(axis=0)
    extent = np.abs(points).max() + 1e-8
    radius = (size // 2) * intensity
    points *= radius / extent
    kernel = np.zeros((size, size), np.float64)
    centre = size // 2
    for x, y in points + centre:
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        fx, fy = x - x0, y - y0
        for dx, dy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
            xi, yi = x0 + dx, y0 + dy
            if 0 <= xi < size and 0 <= yi < size:
                kernel[yi, xi] += w
    kernel /= kernel.sum()
    return kernel.astype(np.float32)


def defocus_kernel(radius: float) -> np.ndarray:
    """A normalised disk of ``radius`` px with anti-aliased rim: the point spread of an out-of-focus
    lens (applied in linear light it turns highlights into bokeh discs, as real defocus does)."""
    if radius <= 0:
        raise ValueError(f"defocus radius must be > 0, got {radius}")
    half = int(np.ceil(radius))
    y, x = np.mgrid[-half:half + 1, -half:half + 1]
    kernel = np.clip(radius + 0.5 - np.hypot(x, y), 0.0, 1.0)
    return (kernel / kernel.sum()).astype(np.float32)


def apply_kernel(image: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur an sRGB image with ``kernel`` in linear light (reflected borders)."""
    linear = srgb_to_linear(image)
    blurred = cv2.filter2D(linear, -1, kernel, borderType=cv2.BORDER_REFLECT)
    return linear_to_srgb(blurred)


def add_sensor_noise(image: np.ndarray, rng: np.random.Generator, *, photons: float | None = None,
                     read_sigma: float | None = None) -> np.ndarray:
    """Poisson-Gaussian noise in linear light: ``photons`` electrons at full scale, ``read_sigma`` in [0, 1] units."""
    photons = rng.uniform(300.0, 4000.0) if photons is None else photons
    read_sigma = rng.uniform(0.0, 0.01) if read_sigma is None else read_sigma
    linear = srgb_to_linear(image)
    noisy = rng.poisson(linear * photons).astype(np.float32) / photons
    noisy += rng.normal(scale=read_sigma, size=linear.shape).astype(np.float32)
    return linear_to_srgb(noisy)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """Float image in [0, 1] → uint8, rounded to nearest (values outside [0, 1] are clipped)."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def recolour(image: np.ndarray, order: np.ndarray, saturation: float) -> np.ndarray:
    """Float RGB in [0, 1] with its channels in ``order`` and its saturation scaled by ``saturation``
    about each pixel's grey (Rec. 601 luma), clipped to [0, 1]: a colour the footage lacks, made
    the same way for a pair's input and target."""
    reordered = image[..., order]
    grey = reordered @ np.array([0.299, 0.587, 0.114], np.float32)
    return np.clip(grey[..., None] + saturation * (reordered - grey[..., None]), 0.0, 1.0).astype(np.float32)


def jpeg_roundtrip(image: np.ndarray, quality: int) -> np.ndarray:
    """Compress and decompress as JPEG at ``quality`` (stands in for video-codec artefacts)."""
    ok, encoded = cv2.imencode(".jpg", to_uint8(image), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0


def h264_roundtrip(image: np.ndarray, crf: int) -> np.ndarray:
    """Encode one frame as H.264 (libx264 at ``crf``, 4:2:0) and decode it: the artefacts of the video
    the product is fed. Odd sizes are padded by replication for the codec and cropped back."""
    height, width = image.shape[:2]
    pixels = to_uint8(image)
    if height % 2 or width % 2:
        pixels = np.pad(pixels, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = pixels.shape[1], pixels.shape[0], "yuv420p"
    encoder.time_base = Fraction(1, 25)
    encoder.thread_count = 1  # one crop: threads cost more than they save, and a data worker owns one core
    encoder.options = {"crf": str(int(crf)), "preset": "veryfast", "tune": "zerolatency"}
    frame = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format="yuv420p")
    frame.pts = 0
    packets = encoder.encode(frame) + encoder.encode(None)
    decoder = av.CodecContext.create("h264", "r")
    decoded = [f for packet in packets for f in decoder.decode(packet)] + decoder.decode(None)
    if len(decoded) != 1:
        raise RuntimeError(f"H.264 round trip gave {len(decoded)} frames, expected 1")
    return decoded[0].to_ndarray(format="rgb24")[:height, :width].astype(np.float32) / 255.0


def optical_flow(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dense flow from ``a`` to ``b`` (H×W×2, pixels; uint8 RGB inputs): a(x) ≈ b(x + flow(x))."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    grey = lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
    return dis.calc(grey(a), grey(b), None)


def interpolate(a: np.ndarray, b: np.ndarray, flow_ab: np.ndarray, s: float) -> np.ndarray:
    """The frame at fraction ``s`` of the interval from ``a`` to ``b`` (float32 linear or sRGB images):
    each pixel moves along the a→b flow, sampled back from both ends and cross-faded."""
    h, w = flow_ab.shape[:2]
    gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    fx, fy = flow_ab[..., 0], flow_ab[..., 1]
    from_a = cv2.remap(a, gx - s * fx, gy - s * fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    from_b = cv2.remap(b, gx + (1 - s) * fx, gy + (1 - s) * fy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return (1 - s) * from_a + s * from_b


def gopro_blur(previous: np.ndarray, centre: np.ndarray, following: np.ndarray, *, exposure: int,
               upsample: int = 8) -> np.ndarray:
    """GoPro-style blur of ``centre`` from three consecutive uint8 RGB frames: the video is raised to
    ``upsample`` × its frame rate by flow interpolation (as REDS did; the GoPro camera filmed at 240
    fps instead), then the ``exposure`` virtual frames centred on ``centre`` are averaged in linear
    light. ``exposure`` <= 2·upsample + 1; ``upsample`` + 1 is one full frame interval of shutter."""
    return gopro_blurs(previous, centre, following, exposures=(exposure,), upsample=upsample)[0]


def gopro_blurs(previous: np.ndarray, centre: np.ndarray, following: np.ndarray, *, exposures: tuple[int, ...],
                upsample: int = 8) -> list[np.ndarray]:
    """:func:`gopro_blur` for several exposures at once: the flows and the running sum of virtual
    frames are shared, so three exposures cost about as much as the longest one."""
    for exposure in exposures:
        if exposure < 1 or exposure > 2 * upsample + 1:
            raise ValueError(f"exposure must be in [1, {2 * upsample + 1}] virtual frames, got {exposure}")
    lin = [srgb_to_linear(f.astype(np.float32) / 255.0) for f in (previous, centre, following)]
    longest = max(exposures) // 2
    flow_back = optical_flow(centre, previous) if longest else None
    flow_fwd = optical_flow(centre, following) if longest else None
    wanted = {e // 2 for e in exposures}  # half-widths whose running sum is an answer
    acc = lin[1].copy()
    sums = {0: acc.copy()} if 0 in wanted else {}
    for k in range(1, longest + 1):
        s = k / upsample
        acc += interpolate(lin[1], lin[2], flow_fwd, s) + interpolate(lin[1], lin[0], flow_back, s)
        if k in wanted:
            sums[k] = acc.copy()
    return [linear_to_srgb(sums[e // 2] / (2 * (e // 2) + 1)) for e in exposures]


@dataclasses.dataclass(frozen=True)
class Motion:
    """Rigid image motion per frame interval: ``shift`` (dx, dy) pixels, ``roll`` degrees and ``zoom``
    (relative scale change) about the image centre. Time ``t`` is in frame intervals."""

    shift: tuple[float, float] = (0.0, 0.0)
    roll: float = 0.0
    zoom: float = 0.0

    def matrix(self, t: float, centre: tuple[float, float]) -> np.ndarray:
        """2×3 affine taking a point of the frame at time 0 to where it is at time ``t``."""
        m = cv2.getRotationMatrix2D(centre, self.roll * t, 1.0 + self.zoom * t)
        m[:, 2] += (self.shift[0] * t, self.shift[1] * t)
        return m


def random_motion(rng: np.random.Generator, *, max_shift: float = 16.0, max_roll: float = 1.5,
                  max_zoom: float = 0.02) -> Motion:
    """A camera motion whose speed is log-uniform from 0.25 px to ``max_shift`` px per frame interval
    (most real frames move little, a few move a lot), in a uniform direction, with a little roll and zoom."""
    speed = float(np.exp(rng.uniform(np.log(0.25), np.log(max_shift))))
    angle = rng.uniform(0.0, 2.0 * np.pi)
    return Motion((speed * float(np.cos(angle)), speed * float(np.sin(angle))),
                  float(rng.uniform(-max_roll, max_roll)), float(rng.uniform(-max_zoom, max_zoom)))


def moving_object(rng: np.random.Generator, texture: np.ndarray, size: int, *, max_shift: float = 24.0
                  ) -> tuple[np.ndarray, np.ndarray, Motion]:
    """An object to move across a scene: a ``size``×``size`` crop of ``texture`` (sRGB float), a soft
    elliptical alpha mask of the same size, and its own motion."""
    h, w = texture.shape[:2]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    patch = texture[y:y + size, x:x + size]
    mask = np.zeros((size, size), np.float32)
    axes = (int(rng.uniform(0.2, 0.45) * size), int(rng.uniform(0.2, 0.45) * size))
    cv2.ellipse(mask, (size // 2, size // 2), axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 1.0)
    return patch, mask, random_motion(rng, max_shift=max_shift, max_roll=0.0, max_zoom=0.0)


def render_motion_blur(image: np.ndarray, motion: Motion, *, exposure: int, upsample: int = 8,
                       obj: tuple[np.ndarray, np.ndarray, Motion] | None = None,
                       obj_origin: tuple[int, int] = (0, 0)) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, sharp) sRGB float images of ``image`` (sRGB float) seen by a camera moving by
    ``motion``, with ``obj`` (patch, mask, motion from :func:`moving_object`) pasted at ``obj_origin``
    (x, y) moving on its own: ``exposure`` virtual frames at ``upsample`` × the frame rate, centred on
    time 0, averaged in linear light; sharp is the frame at time 0. Borders are reflected, so callers
    crop a margin as wide as the largest displacement."""
    if exposure < 1 or exposure % 2 == 0:
        raise ValueError(f"exposure must be an odd number of virtual frames, got {exposure}")
    h, w = image.shape[:2]
    centre = ((w - 1) / 2.0, (h - 1) / 2.0)
    linear = srgb_to_linear(image)
    if obj is not None:
        patch, mask, obj_motion = obj
        size = patch.shape[0]
        patch_linear = srgb_to_linear(patch)
        # the object's layer: patch and mask placed on a canvas the size of the frame
        layer = np.zeros_like(linear)
        alpha = np.zeros((h, w), np.float32)
        x0, y0 = obj_origin
        layer[y0:y0 + size, x0:x0 + size] = patch_linear
        alpha[y0:y0 + size, x0:x0 + size] = mask
    total = np.zeros_like(linear)
    sharp = None
    half = exposure // 2
    for k in range(-half, half + 1):
        t = k / upsample
        frame = cv2.warpAffine(linear, motion.matrix(t, centre), (w, h), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        if obj is not None:
            m = obj_motion.matrix(t, centre)
            moved = cv2.warpAffine(layer, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            a = cv2.warpAffine(alpha, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
            frame = frame * (1.0 - a) + moved * a
        total += frame
        if k == 0:
            sharp = frame
    assert sharp is not None
    return linear_to_srgb(total / exposure), linear_to_srgb(sharp)
