"""The methods that paint from the photo around a region: `smudge` (the surroundings only)
and `haze`, the default (a generic head seen through a blur, toned from the surroundings
and from each face's mean colour moved by a secret offset: `faceblur.anonymise.head`,
docs/reidentification.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from faceblur.anonymise.base import Job, _luminance
from faceblur.anonymise.head import (
    _Head,
    _smoothstep,
    _with_heads,
    crowd_crowns_of,
    kept_tones,
)
from faceblur.anonymise.masks import _region_weights, region_mask
from faceblur.geometry import Box

# Smudge works on a grid this many cells across each patch of the union (the patch is the
# union's piece plus a margin of photo around it): coarser at higher strength, so less of
# the surroundings' structure runs into the region. Cheap whatever the photo's size.
SMUDGE_CELLS = {"low": 40, "medium": 28, "high": 20}
SMUDGE_MARGIN = 0.3  # photo around each piece of the union, as a share of its larger side
SMUDGE_SMOOTHING = 1.2  # grid cells: a Gaussian over the fill, so no streak or corner shows
# A grid cell counts as visible when at least this share of it lies outside every region
# (its value is then the mean of those pixels alone): a strip of hair or neck thinner than
# a cell still gives the fill its tone.
SMUDGE_VISIBLE_SHARE = 0.2
# A blurred face reads as a soft skin-toned head. Inside each region the fill leans towards
# the tone of the visible skin nearest its piece of the union (neck, ears, hands, arms, a
# neighbour: looked for around the piece, then farther out), from nothing at the region's
# edge up to this weight, reached this share of the way in: a head's shape and tone, from
# pixels left visible.
LEAN_WEIGHT = 0.85
LEAN_DEPTH = 0.4
SKIN_SEARCH = (1.0, 4.0)  # how far around a piece to look for skin, by turns
SKIN_MIN_SHARE = 0.005  # of the visible pixels looked at; and at least SKIN_MIN_PIXELS
SKIN_MIN_PIXELS = 20
SKIN_APART = 40.0  # RGB distance from the colour around a piece for a pixel to count as skin
# The usual skin box in YCrCb (8-bit OpenCV scale), light to deep skin alike.
SKIN_CR = (135, 180)
SKIN_CB = (85, 135)
GRAIN_WIDTH = 1.5  # px: sigma of the smoothing that makes the grain soft, not sandy
SAMPLE_PIXELS = 250_000  # skin tone and grain are estimated on at most this many pixels
GREY = 128.0  # the only colour left when the regions cover the whole photo
# The fill meets the visible pixels at their own fine scale over a Gaussian of this many
# grid cells (`_edge_match`): without it the coarse fill missed them by a cell's worth,
# a seam along every region's edge (bench/look.py's edge step: 14.5 grey levels against
# blur's 4.5 on the group test photo, now 6.9). 0.25 matched closer but carried the
# photo's texture in as a thin streak; 0.5 and up left more of the seam.
EDGE_MATCH = 0.35
# The secret offset moved onto each face's mean colour, uniform in +-this many grey levels
# (all three channels alike), and a little more per channel on a colour photo. Chosen by
# bench/reid.py (re-identification) against bench/look.py (colour shift).
HAZE_OFFSET = {"low": 16.0, "medium": 22.0, "high": 28.0}
HAZE_CHROMA = 3.0


def _fill_from_border(values: np.ndarray, known: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """`values` (float32, HxWx3) with every unknown pixel filled smoothly from the known ones.

    Push-pull: a pyramid of known-weighted means, each level filling the holes of the one
    below; then relaxation towards the harmonic fill (every unknown pixel the mean of its
    four neighbours), which is what a soft blur of the surroundings looks like. Only known
    pixels enter: an unknown one's own value never counts.
    """
    weight = known.astype(np.float32)
    levels = [(values * weight[..., None], weight)]
    while min(levels[-1][1].shape) > 1:
        summed, weight = levels[-1]
        size = (max(1, weight.shape[1] // 2), max(1, weight.shape[0] // 2))
        levels.append(
            (
                cv2.resize(summed, size, interpolation=cv2.INTER_AREA).reshape(*size[::-1], 3),
                cv2.resize(weight, size, interpolation=cv2.INTER_AREA),
            )
        )
    summed, weight = levels[-1]
    filled = np.where(
        weight[..., None] > 0, summed / np.maximum(weight, 1e-6)[..., None], fallback
    ).astype(np.float32)
    for summed, weight in reversed(levels[:-1]):
        up = cv2.resize(filled, weight.shape[::-1], interpolation=cv2.INTER_LINEAR)
        up = up.reshape(*weight.shape, 3)
        mean = summed / np.maximum(weight, 1e-6)[..., None]
        trust = np.clip(weight * 2.0, 0.0, 1.0)[..., None]
        filled = (trust * mean + (1.0 - trust) * up).astype(np.float32)
    kernel = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], dtype=np.float32)
    # Relax only the unknown pixels' bounding box and a ring of one: nothing outside it
    # changes or is read by an unknown pixel, and where it meets the grid's edge the border
    # is the grid's own, so this is the whole grid's relaxation in a fraction of the time.
    rows, cols = np.nonzero(~known)
    if not len(rows):
        return filled
    top, left = max(rows.min() - 1, 0), max(cols.min() - 1, 0)
    window = filled[top : rows.max() + 2, left : cols.max() + 2]
    unknown = np.repeat(~known[top : rows.max() + 2, left : cols.max() + 2, None], 3, axis=2)
    for _ in range(2 * max(known.shape)):
        relaxed = cv2.filter2D(window, -1, kernel, borderType=cv2.BORDER_REPLICATE)
        np.copyto(window, relaxed, where=unknown)
    return filled


def _edge_match(patch: np.ndarray, known: np.ndarray, fill: np.ndarray, sigma: float) -> np.ndarray:
    """What to add to `fill` so that it meets the visible pixels around it at their own
    fine scale: the coarse fill misses each visible pixel by a little (it is a smooth
    mean over cells of 1 / scale px), which showed as a seam along the region's edge. The
    misses of the visible pixels (`patch` where `known`; nothing hidden is read), spread
    inwards by a Gaussian of `sigma` px and fading out over about two sigma from the edge:
    the photo's own structure runs softly into the region, as under a blur."""
    weight = known.astype(np.float32)
    misses = (patch - fill) * weight[..., None]
    spread = cv2.GaussianBlur(misses, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    reach = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    # Half the kernel lies on visible pixels right at the edge: full strength there, gone
    # a few sigma in (smoothly: no crease where it ends).
    strength = _smoothstep(2.0 * reach) / np.maximum(reach, 1e-6)
    return (spread * strength[..., None]).astype(np.float32)


def _is_skin(image: np.ndarray) -> np.ndarray:
    """Which pixels of this RGB uint8 image fall in the usual skin box of YCrCb."""
    ycrcb = cv2.cvtColor(image, cv2.COLOR_RGB2YCrCb)
    return cv2.inRange(ycrcb, (0, SKIN_CR[0], SKIN_CB[0]), (255, SKIN_CR[1], SKIN_CB[1])) > 0


def _visible_skin(
    image: np.ndarray, visible: np.ndarray, skin_box: np.ndarray, piece: Box, around: np.ndarray
) -> np.ndarray | None:
    """The median colour of the visible skin nearest `piece`, or None if there is little.

    Walls, sand and wood share skin's hue, so pixels of the colour `around` the piece
    (where the fill starts anyway) do not count: what is left is the hands, arms and necks
    that stand out from it. Skin of that very colour needs no lean: the fill has its tone.
    `skin_box`: `visible` and in the skin box (`_is_skin`), for the whole image at once.
    """
    x, y, w, h = piece
    height, width = visible.shape
    for reach in SKIN_SEARCH:
        grow = round(reach * max(w, h))
        rows = slice(max(y - grow, 0), min(y + h + grow, height))
        cols = slice(max(x - grow, 0), min(x + w + grow, width))
        step = _sample_step((rows.stop - rows.start) * (cols.stop - cols.start))
        looked_at = np.count_nonzero(visible[rows, cols][::step, ::step])
        skin = image[rows, cols][::step, ::step][skin_box[rows, cols][::step, ::step]]
        skin = skin[np.linalg.norm(skin.astype(np.float32) - around, axis=1) > SKIN_APART]
        if len(skin) >= max(SKIN_MIN_PIXELS, SKIN_MIN_SHARE * looked_at):
            return np.median(skin, axis=0).astype(np.float32)
    return None


def _sample_step(pixels: int) -> int:
    """A stride that leaves at most SAMPLE_PIXELS of `pixels` to estimate a statistic."""
    return max(1, int(np.ceil(np.sqrt(pixels / SAMPLE_PIXELS))))


def _grain(grey: np.ndarray, known: np.ndarray) -> float:
    """The photo's own fine noise level, from neighbouring pixels that are both visible."""
    both = known[:, 1:] & known[:, :-1]
    if not both.any():
        return 1.0
    steps = np.abs(np.diff(grey, axis=1))[both]
    # Median absolute step of a Gaussian noise of sigma s is 0.954 s; texture counts too,
    # so take a little less and cap it: the fill should look smooth, not sandy.
    return float(np.clip(0.8 * np.median(steps) / 0.954, 0.5, 3.0))


def _lean_weights(height: int, width: int, regions: Sequence[Box], shape: str) -> np.ndarray:
    """Smudge's lean towards visible skin: a soft bump in each region (0 at its edge, 1
    from LEAN_DEPTH in), the highest where regions overlap: one smooth surface, no seam."""
    lean = np.zeros((height, width), dtype=np.float32)
    for x, y, w, h in regions:
        if w and h:
            ramp = _region_weights((x, y, w, h), width, height, shape, LEAN_DEPTH)
            np.maximum(
                lean[y : y + h, x : x + w], _smoothstep(ramp), out=lean[y : y + h, x : x + w]
            )
    return lean


def _paint_union(
    image: np.ndarray, regions: Sequence[Box], job: Job, lean_to_skin: bool, heads: Sequence[_Head]
) -> np.ndarray:
    """The union of regions painted over from the visible photo around it, then the heads.

    Every piece of the union (overlapping regions make one piece) is filled once, on a
    coarse grid, smoothly from the visible pixels around it: the tone of the hair, skin,
    neck and background that stay visible, fading into them with no seam (a harmonic
    fill has no ring lighter or darker than both its sides; `_edge_match` makes it meet
    the visible pixels at their own fine scale). Then the heads are laid on
    it, or (smudge) it leans towards the visible skin nearest the piece; a photo gets its
    own grain from fresh secure noise. Nothing inside any region is read here: the
    patch is zeroed there before anything reads it. A grey photo stays grey.
    """
    result = image.copy()
    height, width = image.shape[:2]
    mask = region_mask(height, width, regions, job.shape)
    visible = ~mask
    # Grey when what stays visible is grey and so is every head's tone (nothing visible:
    # the tones alone decide; a colour face hidden whole stays in colour).
    grey_photo = _is_grey(image, visible) and all(np.ptp(head.tone) == 0 for head in heads)
    fallback = np.full(3, GREY, dtype=np.float32)
    if visible.any():
        fallback[:] = cv2.mean(image, mask=visible.astype(np.uint8))[:3]
    elif heads:  # nothing around to fill from: the heads' own tone, not a grey field
        fallback[:] = np.mean([head.tone for head in heads], axis=0)
    count, labels, stats, (union_x, union_y) = _pieces(mask, regions)
    lean = skin_box = None
    if lean_to_skin and not grey_photo and count >= 2:
        lean = _lean_weights(height, width, regions, job.shape)
        skin_box = _is_skin(image) & visible
    for piece in range(1, count):
        x, y, w, h = (int(v) for v in stats[piece, :4])
        margin = round(SMUDGE_MARGIN * max(w, h)) + 2
        left, top = max(x - margin, 0), max(y - margin, 0)
        right, bottom = min(x + w + margin, width), min(y + h + margin, height)
        known = visible[top:bottom, left:right]
        # Zero what the regions hide before anything reads the patch.
        patch = image[top:bottom, left:right].astype(np.float32) * known[..., None]
        side = max(right - left, bottom - top)
        cells = SMUDGE_CELLS[job.strength] * (1 + 2 * SMUDGE_MARGIN)
        scale = min(1.0, cells / side)
        size = (max(1, round((right - left) * scale)), max(1, round((bottom - top) * scale)))
        share = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_AREA)
        small = cv2.resize(patch, size, interpolation=cv2.INTER_AREA).reshape(*share.shape, 3)
        small_known = share >= SMUDGE_VISIBLE_SHARE
        small = small / np.maximum(share, 1e-6)[..., None]
        filled = _fill_from_border(small, small_known, fallback)
        filled = cv2.GaussianBlur(filled, (0, 0), SMUDGE_SMOOTHING, borderType=cv2.BORDER_REPLICATE)
        if heads:
            patch_box = (left, top, right - left, bottom - top)
            filled = _with_heads(filled, patch_box, scale, heads, (width, height), job.shape)
        # Linear, not cubic: cubic overshoots at the edge of the fill, a thin halo.
        big = cv2.resize(filled, (right - left, bottom - top), interpolation=cv2.INTER_LINEAR)
        big = big.reshape(bottom - top, right - left, 3)
        # The match reaches a few sigma in from the edge and reads a few sigma out: only
        # the piece's box and that much around it (the patch's margin is far wider).
        sigma = EDGE_MATCH / scale
        reach = int(np.ceil(4 * sigma)) + 1
        near = (
            slice(max(y - top - reach, 0), min(y - top + h + reach, bottom - top)),
            slice(max(x - left - reach, 0), min(x - left + w + reach, right - left)),
        )
        big[near] += _edge_match(patch[near], known[near], big[near], sigma)
        # From here on only the piece's own box: every pixel it paints lies in there.
        rows, cols = slice(y - top, y - top + h), slice(x - left, x - left + w)
        painted = big[rows, cols]
        if lean is not None:
            hidden = (~small_known).astype(np.uint8)
            ring = small_known & (cv2.dilate(hidden, np.ones((5, 5), np.uint8)) > 0)
            around = np.median(small[ring], axis=0) if ring.any() else fallback
            skin = _visible_skin(image, visible, skin_box, (x, y, w, h), around)
            if skin is not None:
                weight = LEAN_WEIGHT * lean[y : y + h, x : x + w]
                painted += weight[..., None] * (skin - painted)
        if job.grain:
            step = _sample_step(patch.shape[0] * patch.shape[1])
            level = _grain(_luminance(patch[::step]), known[::step])
            # Grain a few pixels wide: white per-pixel noise reads as fine detail (it
            # keeps the Laplacian variance bench/recall.py counts as a face left visible).
            noise = job.rng.standard_normal((h, w), dtype=np.float32)
            noise = cv2.GaussianBlur(noise, (0, 0), GRAIN_WIDTH)
            noise /= max(float(noise.std()), 1e-6)
            painted += level * noise[..., None]
        if grey_photo:
            painted = np.repeat(painted[..., :1], 3, axis=2)
        own = labels[y - union_y : y - union_y + h, x - union_x : x - union_x + w] == piece
        np.copyto(
            result[y : y + h, x : x + w],
            np.clip(painted.round(), 0, 255).astype(np.uint8),
            where=own[..., None],
        )
    return result


def _pieces(
    mask: np.ndarray, regions: Sequence[Box]
) -> tuple[int, np.ndarray, np.ndarray, tuple[int, int]]:
    """The union's pieces (8-connected), as `cv2.connectedComponentsWithStats` finds them
    in the whole mask: their count (with the background), a label per pixel of the
    regions' bounding box (all of the mask lies in it), the pieces' stats in the photo's
    pixels, and where that box starts (x, y)."""
    boxes = [(x, y, x + w, y + h) for x, y, w, h in regions if w and h]
    if not boxes:
        return 1, np.zeros((0, 0), dtype=np.int32), np.zeros((1, 5), dtype=np.int32), (0, 0)
    left, top = min(box[0] for box in boxes), min(box[1] for box in boxes)
    right, bottom = max(box[2] for box in boxes), max(box[3] for box in boxes)
    inside = mask[top:bottom, left:right].astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inside, 8)
    stats[:, 0] += left
    stats[:, 1] += top
    return count, labels, stats, (left, top)


def _is_grey(image: np.ndarray, visible: np.ndarray) -> bool:
    """Whether every visible pixel is grey (then the fill must be grey too)."""
    # One visible coloured pixel settles it: in a colour photo a sparse sample has one.
    sample, seen = image[::8, ::8], visible[::8, ::8]
    if ((sample[..., 0] != sample[..., 1]) | (sample[..., 1] != sample[..., 2]))[seen].any():
        return False
    coloured = (image[..., 0] != image[..., 1]) | (image[..., 1] != image[..., 2])
    return not (coloured & visible).any()


@dataclass(frozen=True)
class Smudge:
    """For those who want nothing of the face kept: the union of regions painted over from
    the photo around it, leaning towards the visible skin nearest each piece (neck, ears,
    hands, a neighbour). Reads no pixel inside any region."""

    randomised: bool = True

    def render(self, image: np.ndarray, regions: Sequence[Box], job: Job) -> np.ndarray:
        return _paint_union(image, regions, job, lean_to_skin=True, heads=())


@dataclass(frozen=True)
class Haze:
    """The default: a head seen through a blur, a soft shaded oval of the person's tone
    under the visible hair, cap or collar around it, fading into the photo.

    Inside each region only its mean colour (`kept_tones`) is read, and it is moved by a
    fresh secret offset per face before use; the rest is smudge's fill from the visible
    photo and a generic head, the same for everyone.
    """

    offset: dict[str, float]
    chroma: float = HAZE_CHROMA
    randomised: bool = True

    def render(self, image: np.ndarray, regions: Sequence[Box], job: Job) -> np.ndarray:
        height, width = image.shape[:2]
        tones = kept_tones(image, regions, job.shape)
        # Whether the photo is grey, from what stays visible and the kept tones alone.
        visible = ~region_mask(height, width, regions, job.shape)
        grey = _is_grey(image, visible) and all(t is None or np.ptp(t) == 0 for t in tones)
        spread, chroma = self.offset[job.strength], 0.0 if grey else self.chroma

        def draw(rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
            rng = job.rng if rng is None else rng
            offset = rng.uniform(-spread, spread) + rng.uniform(-chroma, chroma, 3)
            return offset, int(rng.integers(2**63))

        crowns = crowd_crowns_of(image, regions, job.shape)
        heads = []
        for index, (box, tone, crown) in enumerate(zip(regions, tones, crowns, strict=True)):
            if tone is None:
                continue
            if job.steady is not None and job.tracks is not None:
                tone, seed, crown = job.steady.tone(job.tracks[index], tone, draw, crown)
            else:
                offset, seed = draw()
                tone = tone + offset
            head_rng = np.random.default_rng(seed)
            heads.append(_Head.drawn(box, np.clip(tone, 0.0, 255.0), head_rng, crown))
        return _paint_union(image, regions, job, lean_to_skin=False, heads=heads)
