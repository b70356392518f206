"""Experts built on published networks that need more than the generic :class:`NeuralExpert`:
FFDNet (told a noise-level map), DnCNN-3 (a grey network run on the luma) and IAT (a global
branch run once per photo, a local branch run tiled) and SAFMN (a global response computed once
per photo, then tiled ×4 super-resolution). Each runs its ONNX export (bundled) with ONNX Runtime or its
safetensors conversion with torch; see ``engine.convert.published`` for how the files are made.

:func:`published_experts` builds the experts for a catalog entry whose architecture needs one
(``None`` otherwise: the generic :class:`NeuralExpert` runs it).
"""

from __future__ import annotations

from abc import abstractmethod

import importlib.util
import threading
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..color import is_neutral
from ..errors import ModelError
from ..runtime.onnx_backend import run_session
from .base import Backend, Expert, ExpertContext, ExpertInfo
from .classical.color import from_ycbcr as from_jfif_ycbcr
from .classical.color import to_ycbcr as to_jfif_ycbcr
from .classical.noise_level import context_sigma

#: Per-channel noise levels whose largest/smallest mean ratio exceeds this are removed channel
#: by channel (one FFDNet run per channel, keeping that channel of each output; the published
#: colour FFDNet takes a single map channel); closer levels share one run with their mean map.
PER_CHANNEL_RATIO = 1.25

#: Below this σ ([0, 1] units, about 0.25/255) there is nothing worth removing.
MIN_SIGMA = 0.001

#: The chroma pass: FFDNet's output keeps the full-resolution run told σ except for the low band
#: of its chroma (JFIF Cb/Cr below half the sampling rate), which comes from a run on the photo
#: area-downscaled by 2 and told a multiple of σ, upscaled back.
#: White noise averages down by 2 in a 2x2 area mean, so there the chroma run is told σ/2
#: (:data:`WHITE_CHROMA_GAIN`); a camera's chroma noise is correlated over several pixels
#: (demosaicing, in-camera chroma noise reduction, 4:2:0 JPEG chroma) and does not average down,
#: so for a JPEG file's decoding it is told more (:data:`CAMERA_CHROMA_GAIN`). Chosen on
#: training-split photos through ``engine.degrade.camera`` and white noise
#: (benchmarks/results/real-noise.md); a quarter of a full run's cost.
WHITE_CHROMA_GAIN = 0.5
CAMERA_CHROMA_GAIN = 1.3
#: Photos with a side below this (pixels) get the plain single run.
CHROMA_PASS_MIN_SIDE = 32
#: FFDNet's tiles are blended over no band: its ``tile_overlap`` (24 px) is its exact receptive radius
#: on the 2-px grid its windows start on (12 convolutions at half resolution), so every kept pixel's
#: output is the whole-image run's to the bit and a blend band only adds pixels to every window
#: (tiles of 512 px: 1.30x → 1.20x the photo's pixels; tested against one whole-image run).
EXACT_TILE_FEATHER = 0

#: Rows of the half-resolution chroma change the streamed chroma pass combines at a time (twice
#: as many full-resolution rows): its scratch is a few bands of this height, not a full-size array.
CHROMA_BAND_ROWS = 32


def noise_sigma_map(image: np.ndarray, ctx: ExpertContext) -> np.ndarray:
    """The noise standard deviation to tell a non-blind denoiser, float32 HxWx1 or HxWx3 in
    [0, 1] units: ``ctx.noise_sigma`` (scalar, per channel ``(3,)`` or an HxWx1/HxWx3 map) or,
    when it is ``None``, the analysis' ``sigma`` measurement or our own wavelet-MAD estimate;
    multiplied by ``ctx.strength``. Raises ``ValueError`` for a map of the wrong shape."""
    h, w = image.shape[:2]
    given = ctx.noise_sigma
    sigma = np.asarray(context_sigma(image, ctx) if given is None else given, dtype=np.float32)
    if sigma.ndim == 0:
        sigma = np.full((h, w, 1), float(sigma), np.float32)
    elif sigma.shape == (3,):
        sigma = np.broadcast_to(sigma.reshape(1, 1, 3), (h, w, 3))
    elif not (sigma.ndim == 3 and sigma.shape[:2] == (h, w) and sigma.shape[2] in (1, 3)):
        raise ValueError(f"noise_sigma must be a scalar, (3,) or an {h}x{w}x1/x3 map; got shape {sigma.shape}")
    strength = min(max(float(ctx.strength), 0.0), 1.0)
    if sigma.strides[:2] == (0, 0):  # uniform over the image: scale one pixel, return a broadcast view
        pixel = np.clip(sigma[:1, :1] * np.float32(strength), 0.0, 1.0).astype(np.float32, copy=False)
        return np.broadcast_to(pixel, sigma.shape)
    return np.clip(sigma * np.float32(strength), 0.0, 1.0).astype(np.float32, copy=False)


class _OnnxMapRunner:
    """``runner(image, sigma)`` on NCHW float32 numpy arrays through ONNX Runtime."""

    def __init__(self, path: Path, device: str, threads: Optional[int]) -> None:
        from ..runtime.onnx_backend import open_session

        self.session = open_session(path, device, threads)
        names = [i.name for i in self.session.get_inputs()]
        if names != ["input", "sigma"]:
            raise ModelError(f"{path.name}: expected inputs ['input', 'sigma'], the model has {names}")

    def __call__(self, image: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        return run_session(self.session, None, {"input": image, "sigma": sigma})[0]


class _TorchMapRunner:
    """``runner(image, sigma)`` with the torch module converted to safetensors."""

    def __init__(self, path: Path, architecture: str, device: str, threads: Optional[int]) -> None:
        import torch

        from ..convert.published import load_converted

        if threads:
            torch.set_num_threads(int(threads))
        self.device = device
        self.module = load_converted(architecture, path).to(device)

    def __call__(self, image: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            y = self.module(torch.from_numpy(image).to(self.device), torch.from_numpy(sigma).to(self.device))
            return y.float().cpu().numpy()


class _NetworkExpert(Expert):
    """What the published-network experts share: a weights file at ``path`` run by ONNX Runtime
    or torch (``info.backend``), and one runner per device, built on first use and kept."""

    path: Path

    def _init_runner_cache(self, device: str, threads: Optional[int]) -> None:
        self.device = device
        self.threads = threads
        self._runner: Any = None
        self._runner_device: Optional[str] = None
        self._lock = threading.Lock()

    def is_available(self) -> bool:
        module = "onnxruntime" if self.info.backend is Backend.ONNX else "torch"
        return self.path.is_file() and importlib.util.find_spec(module) is not None

    @abstractmethod
    def _make_runner(self, device: str) -> Any:
        """A new runner for ``device`` (called under the lock, once per device change)."""

    def runner(self, device: str) -> Any:
        """The runner for ``device``, built once (a device change rebuilds it)."""
        with self._lock:
            if self._runner is None or self._runner_device != device:
                self._runner = self._make_runner(device)
                self._runner_device = device
            return self._runner


#: A black-and-white photo's noise is the same in its three channels, so its luma carries the whole
#: σ where the colour FFDNet (trained on noise independent per channel) expects σ/√3: told σ·√3, it
#: removes the noise a gray photo has: on the real PolyU crops made gray (validation, not fitted) the 25
#: crops the noise stage changed gained +0.02 to +0.63 dB more (none less); on synthetic gray noise of
#: σ 5–25 levels, +0.2 to +7 dB more than told σ. No chroma pass: a gray photo has no chroma.
GRAY_SIGMA_GAIN = float(np.sqrt(3.0))


def gray_sigma(image: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, bool]:
    """(the noise map FFDNet is told for ``image``, whether ``image`` is black and white): ``sigma``
    times :data:`GRAY_SIGMA_GAIN` for a black-and-white photo, else ``sigma`` itself."""
    if is_neutral(image):
        return sigma * np.float32(GRAY_SIGMA_GAIN), True
    return sigma, False


def half_size_sigma(sigma: np.ndarray, size: tuple[int, int], ctx: ExpertContext) -> np.ndarray:
    """The noise map ``sigma`` (HxWx1 or HxWx3, [0, 1]; a broadcast view stays one) at the chroma
    pass's half resolution ``size`` (width, height), times :func:`chroma_sigma_gain`; not clipped."""
    import cv2

    gain = np.float32(chroma_sigma_gain(ctx))
    if sigma.strides[:2] == (0, 0):
        return np.broadcast_to(sigma[:1, :1] * gain, (size[1], size[0], sigma.shape[2]))
    small = cv2.resize(np.ascontiguousarray(sigma), size, interpolation=cv2.INTER_AREA)
    return small.reshape(size[1], size[0], -1) * gain


def _chroma_change(half_rows: np.ndarray, full_rows: np.ndarray) -> np.ndarray:
    """The half-resolution run's colour change over rows of the full run: ``half_rows`` minus
    ``full_rows`` downscaled 2x (area), in JFIF YCbCr with the luma set to 0 (float32)."""
    import cv2

    down = cv2.resize(full_rows, (half_rows.shape[1], half_rows.shape[0]), interpolation=cv2.INTER_AREA)
    delta = to_jfif_ycbcr(half_rows - down)
    delta[..., 0] = 0.0
    return delta


def _add_chroma_change(full: np.ndarray, near: np.ndarray, r0: int, r1: int, s0: int) -> None:
    """Add the colour change to ``full``'s rows ``2·r0:2·r1``: ``near`` holds the change's
    half-resolution rows from ``s0`` on (with the margin the 2x linear upscale reads), upscaled to
    ``full``'s width; the result is clipped to [0, 1]."""
    import cv2

    s1 = s0 + near.shape[0]
    up = cv2.resize(near, (full.shape[1], 2 * (s1 - s0)), interpolation=cv2.INTER_LINEAR)
    ycc = to_jfif_ycbcr(full[2 * r0:2 * r1])
    ycc += up[2 * (r0 - s0):2 * (r1 - s0)]
    full[2 * r0:2 * r1] = np.clip(from_jfif_ycbcr(ycc), 0.0, 1.0)


class FFDNetExpert(_NetworkExpert):
    """FFDNet colour, a non-blind denoiser told the noise level at every pixel.

    The noise level comes from :func:`noise_sigma_map` (``ctx.noise_sigma`` from the analysis,
    else an estimate) times the stage strength: the slider sets the σ the network removes (σ·s),
    which is what ``info.sigma_strength`` tells the session. Runs tiled: sides are padded to even
    sizes and every tile sees 24 pixels of context (the receptive field), so tiles equal the
    whole-image result. About 0.85 M parameters; the ONNX file takes ``input`` N x 3 x H x W and
    ``sigma`` N x 1 x H x W in [0, 1].

    With ``chroma_pass`` (the default) the low band of the chroma comes from a second run at half
    resolution (:data:`WHITE_CHROMA_GAIN`, :data:`CAMERA_CHROMA_GAIN`); with ``pixel_shuffle`` a
    JPEG file's decoding (``ctx.jpeg``: a camera's correlated noise) is first denoised by
    pixel-shuffle down-sampling. :meth:`run_plain` is the published single run, which a caller
    combining runs of its own (the JPEG prior, the deblurrer) uses.
    """

    def __init__(self, path: Path, *, model_id: str, name: str = "", description: str = "",
                 device: str = "cpu", threads: Optional[int] = None, expert_id: Optional[str] = None,
                 chroma_pass: bool = True, pixel_shuffle: bool = False) -> None:
        from ..nets.geometry import FFDNET_RECEPTIVE_RADIUS as RECEPTIVE_RADIUS
        from ..nets.geometry import FFDNET_SIZE_MULTIPLE as SIZE_MULTIPLE

        self.path = Path(path)
        backend = Backend.ONNX if self.path.suffix.lower() == ".onnx" else Backend.TORCH
        if self.path.suffix.lower() not in (".onnx", ".safetensors"):
            raise ModelError(f"{self.path.name}: FFDNet runs from its .onnx or .safetensors conversion")
        self.info = ExpertInfo(
            id=expert_id or f"neural.{model_id}", name=name or "FFDNet colour", tasks=("noise",), backend=backend,
            version=("3" if pixel_shuffle else "2") if chroma_pass else "1", size_multiple=SIZE_MULTIPLE,
            tile_overlap=RECEPTIVE_RADIUS,
            memory_factor=4.0 * 4 * 96 / 4 + 64, sigma_strength=True, model_id=model_id,
            description=description or "Non-blind CNN denoiser told a per-pixel noise-level map (Zhang et al. 2018).")
        #: Whether the chroma comes from a half-resolution run (:data:`WHITE_CHROMA_GAIN`);
        #: ``False``: the plain published use, one full-resolution run.
        self.chroma_pass = bool(chroma_pass)
        #: With the chroma pass, a JPEG file's decoding (a camera's correlated noise) is denoised by
        #: pixel-shuffle down-sampling (:meth:`_pixel_shuffled`) instead of one full-resolution run.
        #: Off by default: +0.29 dB on camera-pipeline photos, but −0.04 dB against the plain run
        #: on real camera crops (benchmarks/results/real-noise.md).
        self.pixel_shuffle = bool(chroma_pass and pixel_shuffle)
        self._init_runner_cache(device, threads)

    def _make_runner(self, device: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        return (_OnnxMapRunner(self.path, device, self.threads) if self.info.backend is Backend.ONNX
                else _TorchMapRunner(self.path, "FFDNet", device, self.threads))

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        return self._run(image, ctx, None)

    def run_in_place(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        """The same result as :meth:`run`, written over ``image`` (float32, C-contiguous,
        writeable) and returned: the network streams its output over its input a row of tiles
        at a time (:func:`engine.runtime.tiling.run_tiled` with ``out``), and the chroma pass
        combines band by band, so the run holds the photo, a quarter-size copy for the chroma
        pass and scratch of a row of tiles. Per-channel noise levels (three runs that each read
        the whole input), odd sides and pixel shuffling hold a full-size output as :meth:`run`
        does, then copy it in. If it raises, ``image`` is partly overwritten."""
        return self._run(image, ctx, image)

    def _run(self, image: np.ndarray, ctx: Optional[ExpertContext], out: Optional[np.ndarray]) -> np.ndarray:
        ctx = ctx or ExpertContext(device=self.device)
        sigma = noise_sigma_map(image, ctx)
        uniform = sigma.strides[:2] == (0, 0)  # a broadcast view: look at one pixel, never copy it
        if float((sigma[:1, :1] if uniform else sigma).max()) < MIN_SIGMA:
            ctx.progress(1.0)
            if out is not None:
                return np.clip(image, 0.0, 1.0, out=out)
            return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
        sigma, neutral = gray_sigma(image, sigma)
        means = (sigma[:1, :1] if uniform else sigma).reshape(-1, sigma.shape[2]).mean(axis=0)
        per_channel = sigma.shape[2] == 3 and float(means.max()) > PER_CHANNEL_RATIO * max(float(means.min()), 1e-6)
        if not self.chroma_pass or per_channel or neutral or min(image.shape[:2]) < CHROMA_PASS_MIN_SIDE:
            return self._denoise(image, sigma, ctx, ctx.progress, out=out)
        h, w = image.shape[:2]
        if (ctx.jpeg is not None and self.pixel_shuffle) or h % 2 or w % 2:
            result = self._with_chroma_pass(image, sigma, ctx)
            if out is None:
                return result
            np.copyto(out, result, casting="same_kind")
            return out
        from ..imageio.quantize import is_releasable

        if out is image and ctx.input_on_disk is not None and is_releasable(image):
            return self._chroma_pass_from_disk(image, sigma, ctx)
        return self._with_streamed_chroma_pass(image, sigma, ctx, out)

    def run_plain(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        """One full-resolution run told :func:`noise_sigma_map` (no chroma pass)."""
        ctx = ctx or ExpertContext(device=self.device)
        sigma = noise_sigma_map(image, ctx)
        if float((sigma[:1, :1] if sigma.strides[:2] == (0, 0) else sigma).max()) < MIN_SIGMA:
            ctx.progress(1.0)
            return np.clip(image, 0.0, 1.0).astype(np.float32, copy=False)
        return self._denoise(image, gray_sigma(image, sigma)[0], ctx, ctx.progress)

    def _with_chroma_pass(self, image: np.ndarray, sigma: np.ndarray, ctx: ExpertContext) -> np.ndarray:
        """The full-resolution run told ``sigma`` with the low band of its chroma (below half the
        sampling rate) replaced by that of a run at half resolution told
        :func:`chroma_sigma_gain` times the downscaled ``sigma``."""
        import cv2

        h, w = image.shape[:2]
        size = (w // 2, h // 2)
        if ctx.jpeg is not None and self.pixel_shuffle:
            full = self._pixel_shuffled(image, sigma, ctx, ctx.progress.sub(0.0, 0.8))
        else:
            full = self._denoise(image, sigma, ctx, ctx.progress.sub(0.0, 0.8))
        small_sigma = half_size_sigma(sigma, size, ctx)
        small = cv2.resize(image.astype(np.float32, copy=False), size, interpolation=cv2.INTER_AREA)
        half = self._denoise(small, np.clip(small_sigma, 0.0, 1.0).astype(np.float32), ctx,
                             ctx.progress.sub(0.8, 1.0))
        # chroma of (half-resolution result − the full run's low band), upscaled: linear, so the
        # same as swapping the low bands, with one upscale
        delta = to_jfif_ycbcr(half - cv2.resize(full, size, interpolation=cv2.INTER_AREA))
        delta[..., 0] = 0.0
        ycc = to_jfif_ycbcr(full)
        ycc += cv2.resize(delta, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.clip(from_jfif_ycbcr(ycc), 0.0, 1.0)

    def _with_streamed_chroma_pass(self, image: np.ndarray, sigma: np.ndarray, ctx: ExpertContext,
                                   out: Optional[np.ndarray]) -> np.ndarray:
        """:meth:`_with_chroma_pass` for even sides, to the bit, without its full-size arrays:
        the half-resolution run goes first (its input is read before ``out``, which may be
        ``image``, is overwritten) and runs over its own downscaled copy; the full run streams
        into ``out``; the chroma change is made in the half-resolution run's array and added
        band by band (an exact 2x area downscale and 2x linear upscale read only neighbouring
        rows, so a band with two rows of margin gives the whole image's values)."""
        import cv2

        h, w = image.shape[:2]
        size = (w // 2, h // 2)
        small_sigma = half_size_sigma(sigma, size, ctx)
        small = cv2.resize(image.astype(np.float32, copy=False), size, interpolation=cv2.INTER_AREA)
        half = self._denoise(small, np.clip(small_sigma, 0.0, 1.0).astype(np.float32), ctx,
                             ctx.progress.sub(0.0, 0.2), out=small)
        del small_sigma
        full = self._denoise(image, sigma, ctx, ctx.progress.sub(0.2, 1.0), out=out)
        band = CHROMA_BAND_ROWS
        for r0 in range(0, size[1], band):  # the chroma change, over ``half``
            r1 = min(r0 + band, size[1])
            half[r0:r1] = _chroma_change(half[r0:r1], full[2 * r0:2 * r1])
        for r0 in range(0, size[1], band):
            r1 = min(r0 + band, size[1])
            s0, s1 = max(r0 - 2, 0), min(r1 + 2, size[1])
            _add_chroma_change(full, half[s0:s1], r0, r1, s0)
        return full

    def _chroma_pass_from_disk(self, image: np.ndarray, sigma: np.ndarray, ctx: ExpertContext) -> np.ndarray:
        """:meth:`_with_streamed_chroma_pass` over ``image`` itself, to the bit, holding at most the
        photo's own float32 pixels (12 bytes per pixel) besides bands and tiles: ``image`` (a
        :func:`~engine.imageio.quantize.releasable_empty` array) is also on disk
        (``ctx.input_on_disk``), so its rows are given back as they are downscaled for the
        half-resolution run, which runs alone; its result goes to a file of its own; ``image`` is
        read back and the full run streams over it; the chroma change is then made band by band
        from that file (each band of it before the full run's rows it reads are overwritten)."""
        import cv2

        from ..imageio.quantize import release_rows
        from ..pipeline.spill import SpilledArray, band_slices

        h, w = image.shape[:2]
        size = (w // 2, h // 2)
        band = CHROMA_BAND_ROWS
        parked = ctx.input_on_disk
        small = np.empty((size[1], size[0], 3), np.float32)
        for r0 in range(0, size[1], band):  # an exact 2x area downscale reads only its 2x2 blocks
            r1 = min(r0 + band, size[1])
            small[r0:r1] = cv2.resize(image[2 * r0:2 * r1], (size[0], r1 - r0), interpolation=cv2.INTER_AREA)
            release_rows(image, 2 * r0, 2 * r1)
        small_sigma = half_size_sigma(sigma, size, ctx)
        half = self._denoise(small, np.clip(small_sigma, 0.0, 1.0).astype(np.float32), ctx,
                             ctx.progress.sub(0.0, 0.2), out=small)
        del small_sigma
        kept = SpilledArray.create(parked.path.parent, half.shape)
        try:
            for rows in band_slices(size[1]):
                kept.write_rows(rows.start, half[rows])
            del half, small
            for rows in band_slices(h):
                image[rows] = parked.read_rows(rows.start, rows.stop)
            full = self._denoise(image, sigma, ctx, ctx.progress.sub(0.2, 1.0), out=image)
            deltas: list[tuple[int, np.ndarray]] = []  # (first row, rows) of the chroma change, in order
            made = 0
            for r0 in range(0, size[1], band):
                r1 = min(r0 + band, size[1])
                s0, s1 = max(r0 - 2, 0), min(r1 + 2, size[1])
                while made < s1:  # reads rows of ``full`` from 2·made on: none written yet
                    m1 = min(made + band, size[1])
                    deltas.append((made, _chroma_change(kept.read_rows(made, m1), full[2 * made:2 * m1])))
                    made = m1
                deltas = [(t, d) for t, d in deltas if t + len(d) > s0]
                rows_near = np.concatenate([d for _, d in deltas])[s0 - deltas[0][0]:s1 - deltas[0][0]]
                _add_chroma_change(full, rows_near, r0, r1, s0)
        finally:
            kept.close()
        return full

    def _pixel_shuffled(self, image: np.ndarray, sigma: np.ndarray, ctx: ExpertContext, progress: Any) -> np.ndarray:
        """Pixel-shuffle down-sampling (Zhou et al. 2020): each of the four stride-2 phase
        sub-images denoised on its own, told its phase of ``sigma``, and put back in place. A
        camera's noise is correlated between neighbouring pixels (demosaicing, in-camera noise
        reduction); between pixels two apart much less, which is what a white-noise denoiser
        expects."""
        subs = pixel_shuffle_split(image)
        sig = sigma if sigma.strides[:2] == (0, 0) else np.ascontiguousarray(pixel_shuffle_pad(sigma))
        outs = []
        for k, (sub, (i, j)) in enumerate(zip(subs, PHASES, strict=True)):
            phase = (np.broadcast_to(sig[:1, :1], sub.shape[:2] + (sig.shape[2],)) if sig.strides[:2] == (0, 0)
                     else np.ascontiguousarray(sig[i::2, j::2]))
            outs.append(self._denoise(sub, phase, ctx, progress.sub(k / 4, (k + 1) / 4)))
        return pixel_shuffle_join(outs, image.shape)

    def _denoise(self, image: np.ndarray, sigma: np.ndarray, ctx: ExpertContext, progress: Any,
                 out: Optional[np.ndarray] = None) -> np.ndarray:
        """One FFDNet pass over ``image`` told the map ``sigma`` (HxWx1 or HxWx3, [0, 1] units;
        per-channel levels further apart than :data:`PER_CHANNEL_RATIO` run channel by channel),
        written tile by tile into ``out`` (float32 HxWx3, which may be ``image`` itself) or a new
        array, and returned clipped to [0, 1]."""
        from ..runtime.tiling import AutoTiles, FixedTiles, run_tiled
        from .neural import MAX_TILE

        device = ctx.device or self.device
        uniform = sigma.strides[:2] == (0, 0)
        runner = self.runner(device)

        def fn(tile: np.ndarray) -> np.ndarray:
            return runner(np.ascontiguousarray(tile[:, :3]), np.ascontiguousarray(tile[:, 3:4]))

        strategy = (FixedTiles(int(ctx.tile)) if ctx.tile else
                    AutoTiles(device=device, max_tile=MAX_TILE.get(device, 1024)))
        means = (sigma[:1, :1] if uniform else sigma).reshape(-1, sigma.shape[2]).mean(axis=0)
        if sigma.shape[2] == 3 and float(means.max()) > PER_CHANNEL_RATIO * max(float(means.min()), 1e-6):
            maps = [sigma[..., c:c + 1] for c in range(3)]  # one run per channel, keep that channel
        elif sigma.shape[2] == 3 and uniform:
            maps = [np.broadcast_to(sigma[:1, :1].mean(axis=2, keepdims=True), sigma.shape[:2] + (1,))]
        else:
            maps = [sigma.mean(axis=2, keepdims=True) if sigma.shape[2] == 3 else sigma]
        src = image.astype(np.float32, copy=False)
        # each per-channel run reads the whole input: those cannot write over it
        own = out is None or (len(maps) > 1 and np.may_share_memory(out, src))
        target = np.empty(image.shape[:2] + (3,), np.float32) if own else out
        for i, m in enumerate(maps):
            run_tiled(src, fn, scale=1, size_multiple=self.info.size_multiple, overlap=self.info.tile_overlap,
                      feather=EXACT_TILE_FEATHER, strategy=strategy, memory_factor=self.info.memory_factor,
                      progress=progress.sub(i / len(maps), (i + 1) / len(maps)), side=m, out=target,
                      channel=i if len(maps) > 1 else None)
        np.clip(target, 0.0, 1.0, out=target)
        if out is None or target is out:
            return target
        np.copyto(out, target)
        return out


#: The four stride-2 phases (row, column) of pixel-shuffle down-sampling, in sub-image order.
PHASES: tuple[tuple[int, int], ...] = ((0, 0), (0, 1), (1, 0), (1, 1))


def pixel_shuffle_pad(image: np.ndarray) -> np.ndarray:
    """``image`` (HxWxC) with its last row/column repeated to even sides (itself when even)."""
    h, w = image.shape[:2]
    if h % 2 == 0 and w % 2 == 0:
        return image
    return np.pad(image, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def pixel_shuffle_split(image: np.ndarray) -> list[np.ndarray]:
    """The four stride-2 phase sub-images (:data:`PHASES`) of ``image`` padded to even sides,
    each ceil(H/2) x ceil(W/2) x C, contiguous."""
    padded = pixel_shuffle_pad(image)
    return [np.ascontiguousarray(padded[i::2, j::2]) for i, j in PHASES]


def pixel_shuffle_join(subs: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Inverse of :func:`pixel_shuffle_split`: the HxWxC image of ``shape`` (float32)."""
    h, w = shape[:2]
    out = np.empty((h + h % 2, w + w % 2) + tuple(subs[0].shape[2:]), np.float32)
    for sub, (i, j) in zip(subs, PHASES, strict=True):
        out[i::2, j::2] = sub
    return out[:h, :w]


def chroma_sigma_gain(ctx: ExpertContext) -> float:
    """What the half-resolution chroma pass is told, as a multiple of the (area-downscaled) σ:
    :data:`CAMERA_CHROMA_GAIN` for a JPEG file's decoding (``ctx.jpeg``), else
    :data:`WHITE_CHROMA_GAIN`."""
    return CAMERA_CHROMA_GAIN if ctx.jpeg is not None else WHITE_CHROMA_GAIN


#: MATLAB ``rgb2ycbcr`` (BT.601, studio range) on [0, 1] values: the luma DnCNN-3 was trained on.
_YCC = np.array([[65.481, 128.553, 24.966], [-37.797, -74.203, 112.0], [112.0, -93.786, -18.214]],
                np.float32) / 255.0
_YCC_OFFSET = np.array([16.0, 128.0, 128.0], np.float32) / 255.0


def to_ycbcr(image: np.ndarray) -> np.ndarray:
    """float32 RGB in [0, 1] → YCbCr as MATLAB's ``rgb2ycbcr`` (Y in [16, 235]/255)."""
    return image.astype(np.float32, copy=False) @ _YCC.T + _YCC_OFFSET


def from_ycbcr(ycc: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_ycbcr` (not clipped)."""
    return (ycc - _YCC_OFFSET) @ np.linalg.inv(_YCC).T.astype(np.float32)


class _TorchPlainRunner:
    """``runner(tile)`` for a one-input network converted to safetensors (or read from its
    MatConvNet ``.mat`` original, converted once into a ``.safetensors`` file beside it)."""

    def __init__(self, path: Path, architecture: str, device: str, threads: Optional[int]) -> None:
        import torch

        from ..convert.published import load_converted

        if threads:
            torch.set_num_threads(int(threads))
        if path.suffix.lower() == ".mat":
            from ..convert.matconvnet import convert_mat

            converted = path.with_suffix(".safetensors")
            if not converted.is_file():
                convert_mat(path, converted)
            path = converted
        self.device = device
        self.module = load_converted(architecture, path).to(device)

    def __call__(self, tile: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(np.ascontiguousarray(tile)).to(self.device)).float().cpu().numpy()


class LumaDnCNNExpert(_NetworkExpert):
    """DnCNN-3, the grey network for JPEG deblocking (quality 5–99), blind denoising and
    bicubic-SR refinement, applied to the luma of a colour photo.

    The photo goes to YCbCr (MATLAB's BT.601 ``rgb2ycbcr``, the space DnCNN-3 was trained in),
    the network cleans Y, and Cb/Cr are kept as decoded: running the grey network on the
    chroma planes too measured no better (−0.01 dB RGB PSNR on JPEG q10 validation crops, while
    luma alone gains +1.1 dB on Y and +0.7 dB on RGB). Tiled with 20 px of overlap (its
    receptive field). Runs with torch from the downloaded ``.mat`` (converted once to
    safetensors) or a ``.safetensors`` conversion.
    """

    def __init__(self, path: Path, *, model_id: str, name: str = "", description: str = "",
                 device: str = "cpu", threads: Optional[int] = None, expert_id: Optional[str] = None) -> None:
        from ..nets.geometry import DNCNN_RECEPTIVE_RADIUS as RECEPTIVE_RADIUS

        self.path = Path(path)
        if self.path.suffix.lower() not in (".mat", ".safetensors"):
            raise ModelError(f"{self.path.name}: DnCNN-3 runs from its .mat original or a .safetensors conversion")
        self.info = ExpertInfo(
            id=expert_id or f"neural.{model_id}", name=name or "DnCNN-3 (luma)", tasks=("jpeg",),
            backend=Backend.TORCH, version="1", tile_overlap=RECEPTIVE_RADIUS,
            memory_factor=4.0 * 4 * 64 + 64, model_id=model_id,
            description=description or "Grey DnCNN-3 on the luma: JPEG deblocking (Zhang et al. 2017).")
        self._init_runner_cache(device, threads)

    def is_available(self) -> bool:
        return (self.path.is_file() and importlib.util.find_spec("torch") is not None
                and (self.path.suffix.lower() != ".mat" or importlib.util.find_spec("h5py") is not None))

    def _make_runner(self, device: str) -> Callable[[np.ndarray], np.ndarray]:
        return _TorchPlainRunner(self.path, "DnCNN-grey", device, self.threads)

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        from ..runtime.tiling import AutoTiles, FixedTiles, run_tiled
        from .neural import MAX_TILE

        ctx = ctx or ExpertContext(device=self.device)
        device = ctx.device or self.device
        runner = self.runner(device)
        strategy = (FixedTiles(int(ctx.tile)) if ctx.tile else
                    AutoTiles(device=device, max_tile=MAX_TILE.get(device, 1024)))
        ycc = to_ycbcr(image)
        y = run_tiled(np.ascontiguousarray(ycc[..., :1]), runner, overlap=self.info.tile_overlap, strategy=strategy,
                      memory_factor=self.info.memory_factor, progress=ctx.progress)
        ycc[..., :1] = y
        return np.clip(from_ycbcr(ycc), 0.0, 1.0).astype(np.float32, copy=False)


#: IAT's global branch reads the whole photo at full resolution up to this many pixels; a larger
#: photo is area-downscaled by the smallest integer factor that brings it under (memory: the
#: branch's first feature map is 32 channels at half resolution, ~0.4 GB at 12 MP). On LOL-v1
#: photos (0.24 MP) a 512-px global input instead of the full photo cost 6.5 dB, so the branch
#: is kept as close to full resolution as memory allows.
IAT_GLOBAL_MAX_PIXELS = 4_000_000


def _dummy(shape: tuple[int, ...]) -> np.ndarray:
    return np.full(shape, 0.5, np.float32)


def iat_onnx_forward(session: Any, image: np.ndarray, global_input: np.ndarray) -> np.ndarray:
    """What ``IAT.forward(image, global_input)`` computes, with IAT's ONNX export: the global
    branch once (a tiny dummy image for the local part), then the local branch with its gamma
    and colour matrix (a tiny dummy for the global part)."""
    n = image.shape[0]
    gamma, color = _iat_global(session, global_input)
    return session.run(["output"], {"input": image, "global_input": _dummy((n, 3, 8, 8)),
                                    "gamma": gamma, "color": color})[0]


def _iat_global(session: Any, global_input: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = global_input.shape[0]
    gamma, color = session.run(["gamma_out", "color_out"], {
        "input": _dummy((n, 3, 8, 8)), "global_input": global_input,
        "gamma": np.ones((n, 1), np.float32), "color": np.tile(np.eye(3, dtype=np.float32), (n, 1, 1))})
    return gamma.astype(np.float32), color.astype(np.float32)


class _IATRunner:
    """``global_(photo NCHW) → (gamma, colour)`` and ``local(tile, gamma, colour) → NCHW`` with the
    ONNX export (``.onnx``) or our torch module (``.safetensors``)."""

    def __init__(self, path: Path, device: str, threads: Optional[int]) -> None:
        self.onnx = path.suffix.lower() == ".onnx"
        if self.onnx:
            from ..runtime.onnx_backend import open_session

            self.session = open_session(path, device, threads)
            names = [i.name for i in self.session.get_inputs()]
            if names != ["input", "global_input", "gamma", "color"]:
                raise ModelError(f"{path.name}: not an IAT export (inputs {names})")
        else:
            import torch

            from ..convert.published import load_converted

            if threads:
                torch.set_num_threads(int(threads))
            self.device = device
            self.module = load_converted("IAT", path).to(device)

    def global_(self, photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.onnx:
            return _iat_global(self.session, photo)
        import torch

        with torch.inference_mode():
            gamma, color = self.module.global_net(torch.from_numpy(photo).to(self.device))
            return gamma.float().cpu().numpy(), color.float().cpu().numpy()

    def local(self, tile: np.ndarray, gamma: np.ndarray, color: np.ndarray) -> np.ndarray:
        if self.onnx:
            return run_session(self.session, ["output"], {"input": tile, "global_input": _dummy((1, 3, 8, 8)),
                                                          "gamma": gamma, "color": color})[0]
        import torch

        from ..nets.iat import apply_global

        with torch.inference_mode():
            x = torch.from_numpy(tile).to(self.device)
            mul, add = self.module.local_net(x)
            out = apply_global(x * mul + add, torch.from_numpy(gamma).to(self.device),
                               torch.from_numpy(color).to(self.device))
            return out.float().cpu().numpy()


class IATExpert(_NetworkExpert):
    """IAT (Illumination-Adaptive Transformer, ~90 k parameters): low-light enhancement (weights
    trained on LOL-v1) or exposure correction (trained on under- and over-exposed photos).

    The global branch (gamma and a colour matrix for the whole photo) runs once on the photo
    (see :data:`IAT_GLOBAL_MAX_PIXELS`); the local branch, a per-pixel multiplier and offset,
    runs tiled with 11 px of overlap (its receptive field), so tiles equal one whole pass. The
    expert as a whole needs the whole photo. The stage strength blends.
    """

    def __init__(self, path: Path, *, model_id: str, name: str = "", description: str = "",
                 device: str = "cpu", threads: Optional[int] = None, expert_id: Optional[str] = None,
                 tasks: tuple[str, ...] = ("lowlight",)) -> None:
        from ..nets.geometry import IAT_LOCAL_RADIUS as LOCAL_RADIUS

        self.path = Path(path)
        if self.path.suffix.lower() not in (".onnx", ".safetensors"):
            raise ModelError(f"{self.path.name}: IAT runs from its .onnx or .safetensors conversion")
        backend = Backend.ONNX if self.path.suffix.lower() == ".onnx" else Backend.TORCH
        self.info = ExpertInfo(
            id=expert_id or f"neural.{model_id}", name=name or "IAT", tasks=tasks, backend=backend, version="1",
            tile_overlap=LOCAL_RADIUS, memory_factor=4.0 * 4 * 64 + 64, model_id=model_id,
            description=description or "Illumination-Adaptive Transformer (Cui et al. 2022).")
        self._init_runner_cache(device, threads)

    def _make_runner(self, device: str) -> _IATRunner:
        return _IATRunner(self.path, device, self.threads)

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        from ..runtime.tiling import AutoTiles, FixedTiles, run_tiled
        from .neural import MAX_TILE, area_downscale

        ctx = ctx or ExpertContext(device=self.device)
        device = ctx.device or self.device
        runner = self.runner(device)
        ctx.progress(0.0, "global illumination")
        h, w = image.shape[:2]
        factor = 1
        while (h // factor) * (w // factor) > IAT_GLOBAL_MAX_PIXELS:
            factor += 1
        photo = image if factor == 1 else area_downscale(
            np.ascontiguousarray(image[: h // factor * factor, : w // factor * factor]), factor)
        gamma, color = runner.global_(np.ascontiguousarray(photo.transpose(2, 0, 1)[None], dtype=np.float32))
        strategy = (FixedTiles(int(ctx.tile)) if ctx.tile else
                    AutoTiles(device=device, max_tile=MAX_TILE.get(device, 1024)))
        out = run_tiled(image.astype(np.float32, copy=False), lambda t: runner.local(t, gamma, color),
                        overlap=self.info.tile_overlap, strategy=strategy, memory_factor=self.info.memory_factor,
                        progress=ctx.progress.sub(0.1, 1.0))
        return np.clip(out, 0.0, 1.0, out=out)


def safmn_onnx_forward(session: Any, image: np.ndarray) -> np.ndarray:
    """What ``SAFMN.forward(image)`` computes, with SAFMN's ONNX export: the global response of
    the photo first, then the network with it (tiny dummies for the part not wanted)."""
    n = image.shape[0]
    response = session.run(["response_out"], {"input": _dummy((n, 3, 16, 16)), "global_input": image,
                                               "response": np.ones((n, 36, 1, 1), np.float32)})[0]
    return session.run(["output"], {"input": image, "global_input": _dummy((n, 3, 16, 16)),
                                    "response": response})[0]


class _SAFMNRunner:
    """``response(photo) → N x C x 1 x 1`` and ``tile(x, response) → N x 3 x 4h x 4w``, with the
    ONNX export or our torch module."""

    def __init__(self, path: Path, device: str, threads: Optional[int]) -> None:
        self.onnx = path.suffix.lower() == ".onnx"
        if self.onnx:
            from ..runtime.onnx_backend import open_session

            self.session = open_session(path, device, threads)
            names = [i.name for i in self.session.get_inputs()]
            if names != ["input", "global_input", "response"]:
                raise ModelError(f"{path.name}: not a SAFMN export (inputs {names})")
        else:
            import torch

            from ..convert.published import load_converted

            if threads:
                torch.set_num_threads(int(threads))
            self.device = device
            self.module = load_converted("SAFMN", path).to(device)

    def response(self, photo: np.ndarray) -> np.ndarray:
        if self.onnx:
            return self.session.run(["response_out"], {"input": _dummy((1, 3, 16, 16)), "global_input": photo,
                                                       "response": np.ones((1, 36, 1, 1), np.float32)})[0]
        import torch

        with torch.inference_mode():
            return self.module.response(torch.from_numpy(photo).to(self.device)).float().cpu().numpy()

    def tile(self, x: np.ndarray, response: np.ndarray) -> np.ndarray:
        if self.onnx:
            return run_session(self.session, ["output"], {"input": x, "global_input": _dummy((1, 3, 16, 16)),
                                                          "response": response})[0]
        import torch

        with torch.inference_mode():
            return self.module(torch.from_numpy(x).to(self.device),
                               torch.from_numpy(response).to(self.device)).float().cpu().numpy()


class SAFMNExpert(_NetworkExpert):
    """SAFMN ×4 (NTIRE 2023 efficient-SR variant, 0.24 M parameters, trained on bicubic
    downscaling): a fast, faithful upscaler, not generative. ``out_scale`` 2 runs it ×4 and
    area-downscales each tile's output by 2 (an anti-aliased ×2 upscaler).

    The photo's global response (GRN's channel energies) is computed once on the whole photo
    and passed to every tile; sides are padded to multiples of 16 so that the max-pooling
    pyramid's cells align with the photo's, and tiles get 48 px of context.
    """

    def __init__(self, path: Path, *, model_id: str, name: str = "", description: str = "",
                 device: str = "cpu", threads: Optional[int] = None, expert_id: Optional[str] = None,
                 out_scale: int = 4) -> None:
        from ..nets.geometry import SAFMN_SCALE as SCALE
        from ..nets.geometry import SAFMN_SIZE_MULTIPLE as SIZE_MULTIPLE
        from ..nets.geometry import SAFMN_TILE_OVERLAP as TILE_OVERLAP

        self.path = Path(path)
        if self.path.suffix.lower() not in (".onnx", ".safetensors"):
            raise ModelError(f"{self.path.name}: SAFMN runs from its .onnx or .safetensors conversion")
        if out_scale not in (2, 4):
            raise ValueError("SAFMN serves 4x and 2x")
        backend = Backend.ONNX if self.path.suffix.lower() == ".onnx" else Backend.TORCH
        suffix = "" if out_scale == SCALE else f".x{out_scale}"
        self.out_scale = out_scale
        self.info = ExpertInfo(
            id=expert_id or f"neural.{model_id}{suffix}", name=(name or "SAFMN") + ("" if not suffix else " at 2x"),
            tasks=("upscale",), backend=backend, version="1", scale=out_scale, size_multiple=SIZE_MULTIPLE,
            tile_overlap=TILE_OVERLAP, memory_factor=4.0 * 4 * 72 + 4 * 3 * SCALE ** 2,
            model_id=model_id, description=description or "Efficient fidelity super-resolution (Sun et al. 2023).")
        self._init_runner_cache(device, threads)

    def _make_runner(self, device: str) -> _SAFMNRunner:
        return _SAFMNRunner(self.path, device, self.threads)

    def run(self, image: np.ndarray, ctx: Optional[ExpertContext] = None) -> np.ndarray:
        from ..runtime.tiling import AutoTiles, FixedTiles, run_tiled
        from .neural import MAX_TILE, area_downscale

        ctx = ctx or ExpertContext(device=self.device)
        device = ctx.device or self.device
        runner = self.runner(device)
        photo = np.ascontiguousarray(image.transpose(2, 0, 1)[None], dtype=np.float32)
        response = runner.response(photo)
        reduction = 4 // self.out_scale

        def fn(tile: np.ndarray) -> np.ndarray:
            y = runner.tile(tile, response)
            if reduction == 1:
                return y
            return area_downscale(np.ascontiguousarray(y[0].transpose(1, 2, 0)), reduction).transpose(2, 0, 1)[None]

        strategy = (FixedTiles(int(ctx.tile)) if ctx.tile else
                    AutoTiles(device=device, max_tile=MAX_TILE.get(device, 1024)))
        out = run_tiled(image.astype(np.float32, copy=False), fn, scale=self.out_scale,
                        size_multiple=self.info.size_multiple, overlap=self.info.tile_overlap, strategy=strategy,
                        memory_factor=self.info.memory_factor, progress=ctx.progress)
        return np.clip(out, 0.0, 1.0, out=out)


def _safmn_experts(path: Path, **kw: Any) -> list[Expert]:
    return [SAFMNExpert(path, **kw), SAFMNExpert(path, out_scale=2, **kw)]


#: Catalog architectures whose models need experts of their own, by architecture name: a class
#: or a callable returning a list of experts.
EXPERT_FACTORIES: dict[str, Callable[..., Any]] = {
    "FFDNet": FFDNetExpert, "DnCNN-3": LumaDnCNNExpert, "IAT": IATExpert, "SAFMN": _safmn_experts}


def published_experts(entry: Any, path: Path, device: str = "cpu",
                      threads: Optional[int] = None) -> Optional[list[Expert]]:
    """The experts for catalog ``entry`` installed at ``path`` if its architecture needs its own
    class (:data:`EXPERT_FACTORIES`), else ``None``."""
    factory = EXPERT_FACTORIES.get(str(entry.architecture))
    if factory is None:
        return None
    made = factory(Path(path), model_id=entry.id, name=str(entry.name), description=str(entry.description),
                   device=device, threads=threads)
    return list(made) if isinstance(made, list) else [made]
