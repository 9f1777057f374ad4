"""Facial clue regions: MediaPipe face-mesh landmark sets per region, and their rasterisation onto
the ViT patch grid of the frame as the model sees it.

The MicroEmo paper defines "different facial regions as subtle emotional clue regions, predefined on
facial anatomy" from face-mesh keypoints, without listing them. Our choice (``DEFAULT_CLUE_REGIONS``):

- ``eyes``: both eye contours (AU5/6/7: lid raise, squint; blinking). Left and right together, so the
  two eyes can attend to each other (asymmetry is itself a clue).
- ``eyebrows``: both brows (AU1/2 raise, AU4 furrow: surprise, fear, anger, sadness).
- ``mouth``: outer and inner lip contours (AU12/15 lip corners, AU25/26 parting, AU23/24 press).
- ``nose``: bridge, tip and alae (AU9 nose wrinkle: disgust).
- ``cheeks``: the malar area below the eyes to the nasolabial fold (AU6 cheek raiser: tells a felt
  Duchenne smile from a posed one; AU10/11 upper-lip raise).

Each region is a union of convex parts (one per side for eyes, brows, cheeks), so a region never
covers the skin between the two eyes. The model takes any number R of regions; pass other names
(``left_eye``, ``right_eyebrow``, ``face_oval``, ...) or index sets of your own.

Hub-shipped with the processor: numpy only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

NUM_LANDMARKS = 478  # 468 mesh points + 10 iris points (refine_landmarks / Tasks FaceLandmarker)

LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267,
        269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)  # fmt: skip
LEFT_EYE = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
RIGHT_EYE = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)
LEFT_EYEBROW = (276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
RIGHT_EYEBROW = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107)
NOSE = (1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440)
FACE_OVAL = (10, 21, 54, 58, 67, 93, 103, 109, 127, 132, 136, 148, 149, 150, 152, 162, 172, 176, 234, 251,
             284, 288, 297, 323, 332, 338, 356, 361, 365, 377, 378, 379, 389, 397, 400, 454)  # fmt: skip
LEFT_IRIS = (474, 475, 476, 477)
RIGHT_IRIS = (469, 470, 471, 472)
# Malar regions, mirror-symmetric point for point: below the lower lid, out to the cheekbone and
# down to the nasolabial fold.
RIGHT_CHEEK = (50, 101, 116, 117, 118, 119, 100, 123, 147, 187, 205, 36, 142, 126, 203, 206, 207)
LEFT_CHEEK = (280, 330, 345, 346, 347, 348, 329, 352, 376, 411, 425, 266, 371, 355, 423, 426, 427)

# name -> convex parts (each a tuple of landmark indices); a region is the union of its parts.
CLUE_REGIONS: dict[str, tuple[tuple[int, ...], ...]] = {
    "eyes": (LEFT_EYE, RIGHT_EYE),
    "eyebrows": (LEFT_EYEBROW, RIGHT_EYEBROW),
    "mouth": (LIPS,),
    "nose": (NOSE,),
    "cheeks": (LEFT_CHEEK, RIGHT_CHEEK),
    "left_eye": (LEFT_EYE,),
    "right_eye": (RIGHT_EYE,),
    "left_eyebrow": (LEFT_EYEBROW,),
    "right_eyebrow": (RIGHT_EYEBROW,),
    "left_cheek": (LEFT_CHEEK,),
    "right_cheek": (RIGHT_CHEEK,),
    "irises": (LEFT_IRIS, RIGHT_IRIS),
    "face_oval": (FACE_OVAL,),
}
DEFAULT_CLUE_REGIONS: tuple[str, ...] = ("eyes", "eyebrows", "mouth", "nose", "cheeks")


def resolve_regions(
    regions: Sequence[str] | Mapping[str, Sequence[Sequence[int]]] | None = None,
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Names (from :data:`CLUE_REGIONS`) or a ``{name: [parts]}`` mapping -> ``{name: parts}``."""
    if regions is None:
        regions = DEFAULT_CLUE_REGIONS
    if isinstance(regions, Mapping):
        resolved = {str(k): tuple(tuple(int(i) for i in part) for part in v) for k, v in regions.items()}
    else:
        unknown = [name for name in regions if name not in CLUE_REGIONS]
        if unknown:
            raise ValueError(f"unknown clue region(s) {unknown}; known: {sorted(CLUE_REGIONS)}")
        resolved = {name: CLUE_REGIONS[name] for name in regions}
    for name, parts in resolved.items():
        for part in parts:
            if len(part) < 3 or min(part) < 0 or max(part) >= NUM_LANDMARKS:
                raise ValueError(f"region {name!r}: each part needs >= 3 landmark indices in [0, {NUM_LANDMARKS})")
    return resolved


# The hull and the point-in-polygon test are written here rather than taken from matplotlib's Path or scikit-image:
# this file ships with the processor to the Hub (remote code), where only numpy may be assumed; a user loading
# the processor should not need matplotlib. tests/processing/test_face_regions_geometry.py checks both against
# scipy's ConvexHull and matplotlib's Path.contains_points.
def _convex_hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (Andrew's monotone chain) of [N, 2] points, in order around the polygon.

    Plain Python floats: for the 10-40 points of a region this is several times faster than numpy.
    """
    pts = sorted(set(map(tuple, np.asarray(points, dtype=np.float64).tolist())))
    if len(pts) < 3:
        return np.array(pts, dtype=np.float64).reshape(-1, 2)

    def half(sequence):
        chain: list[tuple[float, float]] = []
        for p in sequence:
            while len(chain) >= 2:
                (ax, ay), (bx, by) = chain[-2], chain[-1]
                if (bx - ax) * (p[1] - ay) - (by - ay) * (p[0] - ax) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower, upper = half(pts), half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1], dtype=np.float64)


def _inside_convex(hull: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Which of the [M, 2] points lie inside (or on) the counter-clockwise convex polygon ``hull``."""
    if len(hull) < 3:
        return np.zeros(len(xy), dtype=bool)
    a = hull
    b = np.roll(hull, -1, axis=0)
    cross = (b[:, 0] - a[:, 0])[None] * (xy[:, 1:2] - a[:, 1][None]) - (b[:, 1] - a[:, 1])[None] * (
        xy[:, 0:1] - a[:, 0][None]
    )
    # Hull is counter-clockwise in (x, y-up); our y axis points down, so the sign test is uniform.
    return np.all(cross >= -1e-9, axis=1) | np.all(cross <= 1e-9, axis=1)


def region_coverage(
    landmarks: np.ndarray,
    grid: int,
    regions: Mapping[str, tuple[tuple[int, ...], ...]],
    samples_per_patch: int = 4,
) -> np.ndarray:
    """[R, grid*grid] fraction of each patch covered by each region, for one frame.

    ``landmarks`` are normalised image coordinates ([478, 2+], x and y in [0, 1] of the frame), which
    are also the coordinates of the model's square resize of that frame: the image processor
    resizes to image_size x image_size without cropping, so normalised positions carry over as is.
    Coverage is measured on ``samples_per_patch`` x ``samples_per_patch`` points per patch.
    """
    s = samples_per_patch
    offsets = (np.arange(s) + 0.5) / (s * grid)
    coverage = np.zeros((len(regions), grid, grid), dtype=np.float32)
    for r, parts in enumerate(regions.values()):
        for part in parts:
            hull = _convex_hull(landmarks[list(part), :2].astype(np.float64))
            if len(hull) < 3:
                continue
            # Only the patches under the hull's bounding box are tested (a region is a few patches).
            c0, r0 = np.clip(np.floor(hull.min(axis=0) * grid).astype(int), 0, grid - 1)
            c1, r1 = np.clip(np.floor(hull.max(axis=0) * grid).astype(int), 0, grid - 1)
            ys = (np.arange(r0, r1 + 1)[:, None] / grid + offsets[None, :]).reshape(-1)
            xs = (np.arange(c0, c1 + 1)[:, None] / grid + offsets[None, :]).reshape(-1)
            py, px = np.meshgrid(ys, xs, indexing="ij")
            inside = _inside_convex(hull, np.stack([px.reshape(-1), py.reshape(-1)], axis=1))
            rows, cols = r1 - r0 + 1, c1 - c0 + 1
            part_cover = inside.reshape(rows, s, cols, s).mean(axis=(1, 3))
            # Parts of one region do not overlap in practice; max keeps a union's coverage <= 1.
            window = coverage[r, r0 : r1 + 1, c0 : c1 + 1]
            np.maximum(window, part_cover, out=window)
    return coverage.reshape(len(regions), grid * grid)


def rasterize_clue_masks(
    landmarks: np.ndarray,
    face_found: np.ndarray,
    image_size: int,
    patch_size: int,
    regions: Sequence[str] | Mapping[str, Sequence[Sequence[int]]] | None = None,
    min_coverage: float = 0.1,
) -> np.ndarray:
    """Clue masks [T, R, P] (bool) on the ViT patch grid, P = (image_size // patch_size) ** 2, row-major.

    A patch belongs to a region when the region covers at least ``min_coverage`` of it; the patch
    holding most of a region (or, for a region smaller than the sampling grid, the patch under its
    centre) is always included, so a detected region is never empty. Frames without a face (``face_found`` False) are all False.
    """
    if image_size % patch_size:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
    landmarks = np.asarray(landmarks, dtype=np.float32)
    face_found = np.asarray(face_found, dtype=bool)
    if landmarks.ndim != 3 or landmarks.shape[1] < NUM_LANDMARKS or landmarks.shape[2] < 2:
        raise ValueError(f"landmarks must be [T, {NUM_LANDMARKS}, 2 or 3], got shape {tuple(landmarks.shape)}")
    if face_found.shape != (landmarks.shape[0],):
        raise ValueError(f"face_found must be [T={landmarks.shape[0]}], got shape {tuple(face_found.shape)}")
    resolved = resolve_regions(regions)
    grid = image_size // patch_size
    masks = np.zeros((landmarks.shape[0], len(resolved), grid * grid), dtype=bool)
    for t in np.flatnonzero(face_found):
        coverage = region_coverage(landmarks[t], grid, resolved)
        masks[t] = coverage >= min_coverage
        for r, parts in enumerate(resolved.values()):
            if coverage[r].max() > 0:
                masks[t, r, coverage[r].argmax()] = True
            else:
                # Smaller than the sampling grid: the patch under the region's centre.
                centre = landmarks[t, [i for part in parts for i in part], :2].mean(axis=0)
                col, row = np.clip((centre * grid).astype(int), 0, grid - 1)
                masks[t, r, row * grid + col] = True
    return masks
