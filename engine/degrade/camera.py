"""A camera-realistic degradation pipeline: what a real camera does to sensor noise.

White Gaussian noise added to an sRGB photo is not what a camera produces. Real noise is
added to the raw sensor signal (signal-dependent: Poisson shot noise plus Gaussian read noise,
one value per photosite of a Bayer mosaic), then demosaicing correlates it spatially and across
channels, white balance and the colour matrix amplify it unevenly per channel (most in blue and
red, as chroma), the tone curve makes it strongest in the shadows and mid-tones, sharpening
boosts its fine grain, and JPEG (4:2:0 chroma) smooths and blocks it. This module runs a clean
sRGB photo backwards to linear camera RGB and forwards again through those steps
("unprocessing", Brooks et al., CVPR 2019), so that the output resembles a real camera JPEG
and the same pipeline without noise gives the matching ground truth.

Steps (:func:`camera_pipeline`):

1. unprocess: inverse tone curve (smoothstep), sRGB → linear, inverse colour matrix (sRGB →
   camera RGB, a random mix of four real cameras' XYZ→camera matrices), inverse white balance
   (red gain U(1.5, 2.4), blue gain U(1.5, 2.6), overall gain 1/N(0.8, 0.1)), with highlights
   protected so that they do not clip;
2. RGGB Bayer mosaic;
3. Poisson–Gaussian noise, variance = shot·x + read on linear values x in [0, 1]; the shot and
   read levels are drawn jointly as real sensors relate them across ISO: log(read) =
   2.18·log(shot) + 1.2 + N(0, 0.26²) (the fit over the SIDD / Darmstadt cameras in Brooks et al.);
4. demosaic (OpenCV bilinear or edge-aware, 16-bit). Only the noise goes through it: the
   output is the clean camera image plus demosaic(noisy mosaic) − demosaic(clean mosaic), so
   the noise gets the demosaicer's spatial and cross-channel correlation while the scene keeps
   its full resolution (the clean photo was already demosaiced once, by its own camera);
5. white balance and colour matrix, linear → sRGB, tone curve;
6. in-camera noise reduction: luma (a Gaussian of σ U(0.5, 1.0) px on the luma of the noise
   alone, an idealised edge-preserving filter, 85 % of cameras) and chroma (a Gaussian on Cb/Cr,
   σ U(1.0, 3.5) px, 85 % of cameras), then optional unsharp-mask sharpening of luma. Without
   them the grain is far finer than real cameras' (neighbour correlation 0.39 against 0.68);
   benchmarks/results/camera-vs-real.md compares the statistics;
7. optional JPEG at a camera-like quality with 4:2:0 chroma subsampling;
8. optional second-order chain: a downscale/upscale (a web resize) and a re-compression.

Everything is seeded: equal inputs and seeds give equal outputs. Images are float32 HxWx3,
sRGB-encoded, in [0, 1]. Odd heights/widths are handled (the mosaic covers the even part, the
last row/column is replicated).
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, replace
from typing import Any, Optional

import cv2
import numpy as np
from PIL import Image

from ..color import JFIF_YCBCR
from ._common import as_image, finish, linear_to_srgb, srgb_to_linear

#: XYZ → camera-RGB matrices of four real cameras (Brooks et al., "Unprocessing images for
#: learned raw denoising", from the cameras of the Darmstadt / SIDD sets); rows: R, G, B.
XYZ_TO_CAMERA: np.ndarray = np.array([
    [[1.0234, -0.2969, -0.2266], [-0.5625, 1.6328, -0.0469], [-0.0703, 0.2188, 0.6406]],
    [[0.4913, -0.0541, -0.0202], [-0.6130, 1.3513, 0.2906], [-0.1564, 0.2151, 0.7183]],
    [[0.8380, -0.2630, -0.0639], [-0.2887, 1.0725, 0.2496], [-0.0627, 0.1427, 0.5438]],
    [[0.6596, -0.2079, -0.0562], [-0.4782, 1.3016, 0.1933], [-0.0970, 0.1581, 0.5181]],
], np.float64)

#: linear sRGB → CIE XYZ (D65).
SRGB_TO_XYZ: np.ndarray = np.array([[0.4124564, 0.3575761, 0.1804375],
                                    [0.2126729, 0.7151522, 0.0721750],
                                    [0.0193339, 0.1191920, 0.9503041]], np.float64)

#: Range of log(shot) the sampler draws from (natural log, variance per unit of linear signal).
#: 1e-4 is a base-ISO DSLR, 0.012 the noisiest phone shots of SIDD; the upper end is extended
#: to 0.03 to cover ISO 12800+ and dark scenes pushed in post.
LOG_SHOT_RANGE: tuple[float, float] = (float(np.log(1e-4)), float(np.log(0.03)))
#: log(read) = READ_SLOPE · log(shot) + READ_OFFSET + N(0, READ_SPREAD²).
READ_SLOPE, READ_OFFSET, READ_SPREAD = 2.18, 1.20, 0.26
#: σ ranges (px) of the in-camera noise reduction, each used by 85 % of the sampled cameras.
#: Fitted so that the noise's neighbour correlation matches real camera JPEGs
#: (benchmarks/results/camera-vs-real.md: real DSLR crops have luma lag-1 correlation ≈ 0.6 and
#: chroma noise correlated over several pixels, ≈ 0.9 at lag 1).
CHROMA_NR_RANGE: tuple[float, float] = (3.0, 7.0)
LUMA_NR_RANGE: tuple[float, float] = (0.7, 1.3)


@dataclass(frozen=True)
class CameraParams:
    """Every choice the pipeline makes (all drawn by :func:`sample_camera_params`).

    ``camera_weights``: convex weights of the four :data:`XYZ_TO_CAMERA` matrices.
    ``red_gain``, ``blue_gain``: white-balance gains (green = 1). ``brightness``: the overall
    gain the unprocessing divides by (≈ 0.8, so the raw signal sits below full scale).
    ``shot``, ``read``: noise variance = shot·x + read for linear x in [0, 1] (0 and 0: no noise).
    ``demosaic``: ``"bilinear"`` or ``"edge_aware"``. ``chroma_nr``: σ in px of the in-camera
    chroma noise reduction (a Gaussian on Cb/Cr; 0 = none). ``luma_nr``: σ in px of the in-camera
    luma noise reduction (a Gaussian on the luma of the noise only; 0 = none). ``sharpen``:
    unsharp-mask amount (0 = none).
    ``jpeg_quality``: 1..100 or ``None`` (no JPEG). ``resize``: second-order scale factor in
    (0, 1] (1 = none; the image is downscaled by it and upscaled back). ``jpeg2_quality``: the
    re-compression quality after the resize, or ``None``.
    """

    camera_weights: tuple[float, float, float, float] = (0.25, 0.25, 0.25, 0.25)
    red_gain: float = 2.1
    blue_gain: float = 1.7
    brightness: float = 0.8
    shot: float = 0.0
    read: float = 0.0
    demosaic: str = "bilinear"
    chroma_nr: float = 0.0
    luma_nr: float = 0.0
    sharpen: float = 0.0
    jpeg_quality: Optional[int] = None
    resize: float = 1.0
    jpeg2_quality: Optional[int] = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_for_shot(shot: float, rng: Optional[np.random.Generator] = None) -> float:
    """Read-noise variance that goes with a shot-noise level on real sensors (Brooks et al.'s
    log-linear fit); with ``rng`` the fit's scatter is added."""
    if shot <= 0:
        return 0.0
    log_read = READ_SLOPE * np.log(shot) + READ_OFFSET
    if rng is not None:
        log_read += rng.normal(0.0, READ_SPREAD)
    return float(np.exp(log_read))


def shot_for_strength(strength: float) -> float:
    """Shot-noise level for a strength in [0, 1], log-linear over :data:`LOG_SHOT_RANGE`
    (0 → no noise)."""
    s = float(np.clip(strength, 0.0, 1.0))
    if s == 0.0:
        return 0.0
    lo, hi = LOG_SHOT_RANGE
    return float(np.exp(lo + s * (hi - lo)))


def sample_camera_params(rng: np.random.Generator, *, noise_strength: Optional[float] = None,
                         jpeg: Optional[bool] = None, second_order: Optional[bool] = None) -> CameraParams:
    """Draw one camera: colour matrix mix, white balance, noise levels, demosaic, sharpening,
    JPEG and second-order chain. ``noise_strength`` in [0, 1] fixes the shot level via
    :func:`shot_for_strength` (else log-uniform over :data:`LOG_SHOT_RANGE`); ``jpeg`` /
    ``second_order`` force those steps on or off (default: on with probability 0.8 / 0.2)."""
    w = rng.uniform(1e-8, 1.0, 4)
    weights = tuple(float(v) for v in w / w.sum())
    red, blue = float(rng.uniform(1.5, 2.4)), float(rng.uniform(1.5, 2.6))
    brightness = float(np.clip(rng.normal(0.8, 0.1), 0.5, 1.0))
    if noise_strength is None:
        shot = float(np.exp(rng.uniform(*LOG_SHOT_RANGE)))
    else:
        shot = shot_for_strength(noise_strength)
    read = read_for_shot(shot, rng)
    demosaic = "edge_aware" if rng.random() < 0.5 else "bilinear"
    chroma_nr = float(rng.uniform(*CHROMA_NR_RANGE)) if rng.random() < 0.85 else 0.0
    sharpen = float(rng.uniform(0.2, 1.0)) if rng.random() < 0.5 else 0.0
    use_jpeg = bool(rng.random() < 0.8) if jpeg is None else bool(jpeg)
    quality = int(rng.integers(70, 97)) if use_jpeg else None
    second = bool(rng.random() < 0.2) if second_order is None else bool(second_order)
    resize = float(rng.uniform(0.5, 0.9)) if second else 1.0
    quality2 = int(rng.integers(50, 91)) if second else None
    luma_nr = float(rng.uniform(*LUMA_NR_RANGE)) if rng.random() < 0.85 else 0.0
    return CameraParams(camera_weights=weights, red_gain=red, blue_gain=blue, brightness=brightness, shot=shot,
                        read=read, demosaic=demosaic, chroma_nr=chroma_nr, luma_nr=luma_nr, sharpen=sharpen,
                        jpeg_quality=quality, resize=resize, jpeg2_quality=quality2)


# ------------------------------------------------------------------ colour and tone
def camera_to_srgb_matrix(weights: tuple[float, ...]) -> np.ndarray:
    """3x3 matrix taking white-balanced camera RGB to linear sRGB (rows sum to 1)."""
    xyz_to_cam = np.tensordot(np.asarray(weights, np.float64), XYZ_TO_CAMERA, axes=1)
    rgb_to_cam = xyz_to_cam @ SRGB_TO_XYZ
    rgb_to_cam /= rgb_to_cam.sum(axis=1, keepdims=True)
    return np.linalg.inv(rgb_to_cam)


def tone_curve(x: np.ndarray) -> np.ndarray:
    """The global S-curve cameras apply after gamma (smoothstep 3x² − 2x³), [0, 1] → [0, 1]."""
    x = np.clip(x, 0.0, 1.0)
    return (3.0 * x ** 2 - 2.0 * x ** 3).astype(np.float32)


def inverse_tone_curve(y: np.ndarray) -> np.ndarray:
    """Inverse of :func:`tone_curve` on [0, 1]."""
    y = np.clip(y, 0.0, 1.0).astype(np.float64)
    return (0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)).astype(np.float32)


def _gains(p: CameraParams) -> np.ndarray:
    return np.array([p.red_gain, 1.0, p.blue_gain], np.float32) / np.float32(p.brightness)


def unprocess(image: np.ndarray, p: CameraParams) -> np.ndarray:
    """sRGB photo → linear, white-balance-inverted camera RGB (float32 HxWx3 in [0, 1])."""
    lin = srgb_to_linear(inverse_tone_curve(as_image(image)))
    cam = lin @ np.linalg.inv(camera_to_srgb_matrix(p.camera_weights)).T.astype(np.float32)
    cam = np.clip(cam, 0.0, 1.0)
    gains = _gains(p)
    # Dividing by the gains would darken highlights that the forward white balance would then
    # clip differently; blend towards gain 1 near white (Brooks et al.'s safe inversion).
    grey = cam.mean(axis=2, keepdims=True)
    inflection = 0.9
    mask = (np.maximum(grey - inflection, 0.0) / (1.0 - inflection)) ** 2
    safe = np.maximum(mask + (1.0 - mask) / gains, 1.0 / gains)
    return np.clip(cam * safe, 0.0, 1.0).astype(np.float32)


def process(cam: np.ndarray, p: CameraParams) -> np.ndarray:
    """Linear camera RGB → sRGB-encoded photo: white balance, colour matrix, gamma, tone curve."""
    balanced = np.clip(cam * _gains(p), 0.0, 1.0)
    lin = balanced @ camera_to_srgb_matrix(p.camera_weights).T.astype(np.float32)
    return tone_curve(linear_to_srgb(np.clip(lin, 0.0, 1.0)))


# ------------------------------------------------------------------ sensor
def mosaic(cam: np.ndarray) -> np.ndarray:
    """RGGB Bayer mosaic of an HxWx3 image with even H and W: float32 HxW (R at (0, 0))."""
    bayer = cam[..., 1].copy()
    bayer[0::2, 0::2] = cam[0::2, 0::2, 0]
    bayer[1::2, 1::2] = cam[1::2, 1::2, 2]
    return bayer.astype(np.float32)


def add_sensor_noise(bayer: np.ndarray, shot: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Poisson–Gaussian noise on linear raw values: variance = shot·x + read (Gaussian
    approximation of the Poisson term, exact in mean and variance). Unclipped float32."""
    if shot <= 0 and read <= 0:
        return bayer.astype(np.float32, copy=True)
    var = np.maximum(shot * np.clip(bayer, 0.0, 1.0) + read, 0.0)
    return (bayer + np.sqrt(var) * rng.standard_normal(bayer.shape)).astype(np.float32)


def demosaic(bayer: np.ndarray, method: str = "bilinear", clip: bool = True) -> np.ndarray:
    """RGGB mosaic (float HxW, values in [0, 1]) → HxWx3 float32, through 16-bit OpenCV
    demosaicing (``"bilinear"`` or ``"edge_aware"``). ``clip=False`` keeps values below 0 (the
    mosaic is offset by 1/4 of full scale around the 16-bit conversion) so that zero-mean noise
    in the shadows is not rectified; values above 1.25 are still clipped."""
    code = cv2.COLOR_BayerBG2RGB_EA if method == "edge_aware" else cv2.COLOR_BayerBG2RGB
    offset = 0.0 if clip else 0.25
    scale = 65535.0 / (1.0 + 2 * offset)
    u16 = (np.clip(bayer + offset, 0.0, 1.0 + 2 * offset) * scale + 0.5).astype(np.uint16)
    return cv2.cvtColor(u16, code).astype(np.float32) / np.float32(scale) - np.float32(offset)


# ------------------------------------------------------------------ after the ISP
def chroma_denoise(image: np.ndarray, sigma: float) -> np.ndarray:
    """In-camera chroma noise reduction: Gaussian blur of σ ``sigma`` px on the JFIF Cb/Cr
    planes, luma untouched (0 = none)."""
    if sigma <= 0:
        return image
    m = JFIF_YCBCR
    ycc = image @ m.T
    ycc[..., 1:] = cv2.GaussianBlur(np.ascontiguousarray(ycc[..., 1:]), (0, 0), sigma)
    return ycc @ np.linalg.inv(m).T.astype(np.float32)


def luma_denoise(noise: np.ndarray, sigma: float) -> np.ndarray:
    """In-camera luma noise reduction, idealised as edge-preserving: a Gaussian of σ ``sigma`` px
    on the luma of the noise field alone (``noise`` = noisy − clean, float32 HxWx3), its chroma
    untouched (0 = none). Real cameras smooth noise while keeping edges; filtering the noise
    rather than the photo keeps the scene's detail exactly."""
    if sigma <= 0:
        return noise
    y = noise @ JFIF_YCBCR[0]
    return noise + (cv2.GaussianBlur(y, (0, 0), sigma) - y)[..., None]


def sharpen(image: np.ndarray, amount: float, radius: float = 1.0) -> np.ndarray:
    """In-camera unsharp mask on luma: Y += amount·(Y − Gaussian(Y, radius))."""
    if amount <= 0:
        return image
    y = image @ JFIF_YCBCR[0]
    detail = y - cv2.GaussianBlur(y, (0, 0), radius)
    return image + np.float32(amount) * detail[..., None]


def jpeg_round_trip(image: np.ndarray, quality: int, subsampling: str = "4:2:0") -> np.ndarray:
    """Pillow/libjpeg encode + decode at ``quality`` with ``subsampling`` (float32 in [0, 1])."""
    u8 = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(u8, "RGB").save(buf, format="JPEG", quality=int(quality), subsampling=subsampling)
    buf.seek(0)
    with Image.open(buf) as decoded:
        return np.asarray(decoded.convert("RGB"), np.float32) / 255.0


def _resize_round_trip(image: np.ndarray, factor: float) -> np.ndarray:
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def camera_pipeline(image: np.ndarray, seed: int = 0, params: Optional[CameraParams] = None,
                    *, noise: bool = True) -> tuple[np.ndarray, CameraParams]:
    """Run ``image`` (HxWx3 sRGB in [0, 1], not modified) through a simulated camera.

    ``params``: the camera (default: drawn by :func:`sample_camera_params` from ``seed``).
    ``noise=False`` runs the identical pipeline without sensor noise (the matching ground truth:
    same colour round trip, demosaic, sharpening and JPEG). Returns (float32 HxWx3 in [0, 1],
    the parameters used).
    """
    img = as_image(image)
    rng = np.random.default_rng([int(seed), 1701])
    p = params if params is not None else sample_camera_params(rng)
    h, w = img.shape[:2]
    he, we = h + h % 2, w + w % 2
    if (he, we) != (h, w):
        img = np.pad(img, ((0, he - h), (0, we - w), (0, 0)), mode="edge")
    cam = unprocess(img, p)
    out = process(cam, p)
    if noise and (p.shot > 0 or p.read > 0):
        bayer = mosaic(cam)
        noisy = add_sensor_noise(bayer, p.shot, p.read, np.random.default_rng([int(seed), 1702]))
        cam_noisy = cam + demosaic(noisy, p.demosaic, clip=False) - demosaic(bayer, p.demosaic, clip=False)
        out = out + luma_denoise(process(cam_noisy, p) - out, p.luma_nr)
    out = out[:h, :w]
    out = np.clip(sharpen(chroma_denoise(out, p.chroma_nr), p.sharpen), 0.0, 1.0)
    if p.jpeg_quality is not None:
        out = jpeg_round_trip(out, p.jpeg_quality)
    if p.resize < 1.0:
        out = np.clip(_resize_round_trip(out, p.resize), 0.0, 1.0)
        if p.jpeg2_quality is not None:
            out = jpeg_round_trip(out, p.jpeg2_quality)
    return finish(out), p


def camera_noise(image: np.ndarray, strength: float, seed: int = 0, *, jpeg: Optional[bool] = None,
                 second_order: Optional[bool] = False) -> tuple[np.ndarray, np.ndarray, CameraParams]:
    """Camera-realistic noise at ``strength`` in [0, 1] (the shot level, :func:`shot_for_strength`;
    read noise follows it). Returns ``(noisy, reference, params)``: the reference is the same
    pipeline without noise, so ``noisy − reference`` is the camera's noise alone."""
    rng = np.random.default_rng([int(seed), 1700])
    p = sample_camera_params(rng, noise_strength=strength, jpeg=jpeg, second_order=second_order)
    noisy, _ = camera_pipeline(image, seed, p)
    reference, _ = camera_pipeline(image, seed, replace(p, shot=0.0, read=0.0), noise=False)
    return noisy, reference, p
