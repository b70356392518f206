"""Summaries of an uncertainty map and the "Caution" blend."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

#: A pixel whose expected absolute error exceeds this many 8-bit levels counts as uncertain
#: (``fraction_above``; the viewer's summary). About 3 % of the tonal range: visible on a
#: smooth area of a photo.
UNCERTAIN_LEVELS = 8.0

#: The Caution blend starts leaning at this expected error and leans fully from LEAN_FULL
#: (8-bit levels).
LEAN_FROM = 3.0
LEAN_FULL = 12.0


#: The uncertain pixels are "mostly in the faces" when at least this share of them is inside
#: detected faces and a face pixel is at least FACES_CONCENTRATED times as often uncertain as a
#: pixel outside them (a face filling most of the frame holds most of any map); the faces are
#: named anyway ("including the faces") when their own uncertain fraction is at least
#: FACE_RATIO times the photo's and at least FACE_MIN_FRACTION.
FACES_MOSTLY = 0.5
FACES_CONCENTRATED = 1.5
FACE_RATIO = 2.0
FACE_MIN_FRACTION = 0.05

Box = tuple[int, int, int, int]


def _face_shares(above: np.ndarray, faces: Optional[Sequence[Box]]) -> tuple[float, float, float]:
    """``(share of the uncertain pixels inside faces, uncertain fraction of the face pixels,
    uncertain fraction of the other pixels)``."""
    from .faces import face_mask

    if not faces:
        return 0.0, 0.0, 0.0
    mask = face_mask(above.shape, list(faces))
    inside, total = float(above[mask].sum()), float(above.sum())
    return (inside / max(total, 1.0), inside / max(float(mask.sum()), 1.0),
            (total - inside) / max(float((~mask).sum()), 1.0))


def summarise(levels: np.ndarray, threshold: float = UNCERTAIN_LEVELS,
              faces: Optional[Sequence[Box]] = None) -> dict[str, float]:
    """``{"mean", "p95"}`` of the map in 8-bit levels and ``"fraction_above"``: the fraction
    (0..1) of pixels whose expected error exceeds ``threshold`` levels. With ``faces`` (boxes
    ``(x, y, w, h)`` in the map's pixels, :func:`engine.uncertainty.faces.detect_faces`; may be
    empty) also ``"faces"``: how many, and ``"fraction_in_faces"``: the share (0..1) of the
    uncertain pixels that lie inside them."""
    u = np.asarray(levels, np.float32)
    if u.size == 0:
        out = {"mean": 0.0, "p95": 0.0, "fraction_above": 0.0}
    else:
        out = {"mean": round(float(u.mean()), 3), "p95": round(float(np.percentile(u, 95)), 3),
               "fraction_above": round(float((u > threshold).mean()), 4)}
    if faces is not None:
        out["faces"] = len(faces)
        out["fraction_in_faces"] = round(_face_shares(u > threshold, faces)[0], 4) if u.size else 0.0
    return out


_REGIONS = (("top left", "top", "top right"), ("left", "centre", "right"),
            ("bottom left", "bottom", "bottom right"))


def describe(levels: np.ndarray, image: Optional[np.ndarray] = None,
             threshold: float = UNCERTAIN_LEVELS, faces: Optional[Sequence[Box]] = None,
             unchanged: bool = False) -> str:
    """One sentence for the analysis panel, e.g. "3 % of the photo is uncertain (expected error
    over 8 levels), mostly in the top left, in fine detail", or "..., mostly in the face".
    ``image``: the restored photo (HxWx3 in [0, 1], same size as ``levels``), to tell detail from
    smooth or dark areas; ``faces``: boxes ``(x, y, w, h)`` in the map's pixels
    (:func:`engine.uncertainty.faces.detect_faces`). ``unchanged``: the result is the input (no
    stage kept, or every strength at 0): nothing was invented, so the map can only say where damage
    the restoration did not fix may remain, and the sentence says that ("Nothing was changed: 30 %
    of the photo may still be wrong (…)")."""
    u = np.asarray(levels, np.float32)
    above = u > threshold
    frac = float(above.mean()) if u.size else 0.0
    share = f"{frac * 100:.1f}" if frac < 0.005 else f"{frac * 100:.0f}"
    said = "may still be wrong" if unchanged else "is uncertain"
    head = (("Nothing was changed: " if unchanged else "") +
            f"{share} % of the photo {said} (expected error over {threshold:g} levels)")
    if frac < 0.005:
        return head
    h, w = u.shape
    counts = np.array([[above[i * h // 3:(i + 1) * h // 3, j * w // 3:(j + 1) * w // 3].sum() for j in range(3)]
                       for i in range(3)], np.float64)
    share = counts / max(counts.sum(), 1.0)
    where = []
    in_faces, face_fraction, other_fraction = _face_shares(above, faces)
    noun = "face" if faces and len(faces) == 1 else "faces"
    if in_faces >= FACES_MOSTLY and face_fraction >= FACES_CONCENTRATED * other_fraction:
        return f"{head}, mostly in the {noun}"
    if share.max() >= 0.3:
        i, j = np.unravel_index(int(share.argmax()), share.shape)
        where.append(f"mostly in the {_REGIONS[i][j]}")
    else:
        where.append("spread over the photo")
    if image is not None and image.shape[:2] == u.shape:
        from .features import _box, _gradient, _grey

        grey = _grey(image)
        tex = _box(_gradient(grey)) * 255.0
        lum = _box(grey)
        if (lum[above] < 0.15).mean() > 0.5:
            where.append("in dark areas")
        elif (tex[above] > np.median(tex) * 2.0).mean() > 0.5:
            where.append("in fine detail and edges")
        elif (tex[above] < np.median(tex)).mean() > 0.5:
            where.append("in smooth areas")
    if faces and face_fraction >= max(FACE_RATIO * frac, FACE_MIN_FRACTION):
        where.append(f"including the {noun}")
    return f"{head}, {', '.join(where)}"


def lean(image: np.ndarray, composed: np.ndarray, levels: np.ndarray, caution: float) -> np.ndarray:
    """The "Caution" control: ``composed`` leaned towards ``image`` (the input) where the
    expected error ``levels`` (HxW, 8-bit levels) is high. ``caution`` in [0, 1]: 0 returns
    ``composed``; 1 returns the input wherever the expected error is at least
    :data:`LEAN_FULL` levels, and leans linearly from :data:`LEAN_FROM` levels. Float32 HxWx3."""
    c = float(min(max(caution, 0.0), 1.0))
    if c == 0.0:
        return composed
    w = np.clip((np.asarray(levels, np.float32) - LEAN_FROM) / (LEAN_FULL - LEAN_FROM), 0.0, 1.0) * np.float32(c)
    out = composed - w[..., None] * (composed - image)
    return np.clip(out, 0.0, 1.0).astype(np.float32, copy=False)
