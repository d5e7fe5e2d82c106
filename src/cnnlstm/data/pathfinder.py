"""Pathfinder at 32x32 (Linsley et al. 2018; Long Range Arena's ``pathfinder32``): are the two dots joined?

Long Range Arena (``lra_benchmarks/data/pathfinder.py``) reads images made by the ``snakes2``
generator of ``drewlinsley/pathfinder`` with, at 32x32: paddle (dash) length 2, paddle margin 1,
padding 1, marker radius 1.5, seed distance 7, continuity 1.0, contour lengths 6, 9 and 14 dashes,
distractors of ``L // 3`` dashes, ``20 // (L // 3)`` of them. This module draws the same task
with its own code, vectorised over a batch of images:

1. **Two target contours.** Contour A starts with a dash whose first end (its *origin tip*) lies
   in the central square :data:`SEED_BOX`; contour B's origin tip is :data:`SEED_DISTANCE` pixels
   from A's, in a random direction. Each grows by ``L - 1`` more dashes of :data:`DASH` pixels,
   each starting :data:`GAP` pixels past the last one's end, turned by an angle drawn among
   :data:`CANDIDATES` with weight ``cos(continuity * turn)^2`` (turns of at most 90 degrees), as
   ``snakes.get_coords_cmf`` weighs its candidate heads. A dash may not come within one pixel of
   any other dash but its own predecessor, nor within :data:`PAD` of the border; an image whose
   target contour cannot grow is drawn again.
2. **Distractors.** ``20 // (L // 3)`` contours of ``L // 3`` dashes, started anywhere free and
   grown by the same rule; one that cannot grow is left out, as the source's ``allow_incomplete``.
3. **Markers.** A disc of radius :data:`MARKER_RADIUS` on the origin tip of one target contour
   and one on a terminal tip: the same contour's (label 1, *connected*) or the other's (label 0).
   Both classes hold two contours of ``L`` dashes whose origin tips are 7 pixels apart, so only
   the path between the dots tells them apart.

Departures from the source: dashes are drawn 1 pixel wide with a linear antialiasing ramp (the
source's 0.5-pixel paddles at 2x antialiasing are fainter), at full intensity, as are the
markers; collision tests use the pixels under three points of each dash, dilated by one pixel,
instead of the source's dilation structures; the first tip's square is 12..20 rather than 14..18
pixels.

Everything random is drawn from a :class:`numpy.random.Generator` passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CANDIDATES", "DASH", "DEFAULT_LENGTH", "GAP", "LENGTHS", "MARKER_RADIUS", "PAD", "SEED_BOX",
           "SEED_DISTANCE", "SIDE", "PathfinderLayout", "distractor_plan", "render_pathfinder"]

SIDE = 32  # output images are SIDE x SIDE grey
LENGTHS = (6, 9, 14)  # Long Range Arena's contour lengths at 32x32, in dashes
DEFAULT_LENGTH = 14  # the hardest of LRA's three: its 'hard' split, curv_contour_length_14
DASH = 2.0  # dash length, pixels (the source's paddle_length)
GAP = 2.0  # from one dash's end to the next one's start (the source's margin on both sides)
PAD = 1.0  # no dash within this many pixels of the border (the source's padding)
SEED_DISTANCE = 7.0  # between the two target contours' origin tips
SEED_BOX = (12.0, 20.0)  # contour A's origin tip, both coordinates (the source: 14..18)
MARKER_RADIUS = 1.5
CONTINUITY = 1.0  # turn weights cos(CONTINUITY * turn)^2, turns up to pi / (2 * CONTINUITY)
CANDIDATES = 16  # directions (or start points) tried per dash (the source: about 10 within 90 degrees)
LINE_WIDTH = 1.0
# points along a dash that its collision test reads: 1 px apart, so a dash cannot slip through
# an obstacle, which is always at least 3 px wide (a dash dilated by one pixel)
_SAMPLES = np.linspace(0.0, 1.0, 3, dtype=np.float32)
_WINDOW = 6  # pixels a side of the window a dash or marker is drawn in
_OFF = 4  # canvas padding while drawing, so no window leaves it


@dataclass(frozen=True)
class PathfinderLayout:
    """What :func:`render_pathfinder` drew, per image; points are ``(y, x)`` in pixels.

    Attributes
    ----------
    targets : np.ndarray
        ``(N, 2, L, 2, 2)``: contour, dash, its start and end point.
    distractors : np.ndarray
        ``(N, D, L // 3, 2, 2)``, the same for the distractor contours.
    drawn : np.ndarray
        ``(N, D)`` bool: whether each distractor was drawn (one that could not grow is not).
    markers : np.ndarray
        ``(N, 2, 2)``: the origin marker's and the terminal marker's centre.
    marked : np.ndarray
        ``(N, 2)`` int: the target contour of the origin marker and of the terminal marker.
    """

    targets: np.ndarray
    distractors: np.ndarray
    drawn: np.ndarray
    markers: np.ndarray
    marked: np.ndarray


def distractor_plan(length: int) -> tuple[int, int]:
    """``(count, dashes)`` of the distractor contours for target contours of ``length`` dashes (LRA's rule)."""
    dashes = length // 3
    return 20 // dashes, dashes


def _unit(theta: np.ndarray) -> np.ndarray:
    """Unit vectors ``(..., 2)`` as ``(y, x)`` for angles ``(...)``."""
    return np.stack([np.sin(theta), np.cos(theta)], axis=-1).astype(np.float32)


def _dash_points(start: np.ndarray, theta: np.ndarray, lead: float = 0.0) -> np.ndarray:
    """Points along dashes ``(..., P, 2)`` that begin ``lead`` pixels from ``start (..., 2)`` in directions ``theta (...)``."""
    along = (lead + _SAMPLES * DASH).astype(np.float32)[:, None]  # (P, 1) distances from start
    return start[..., None, :] + along * _unit(theta)[..., None, :]


def _free(points: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """``(m, K)``: whether candidate dashes ``points (m, K, P, 2)`` stay inside and off ``blocked (m, S, S)``."""
    inside = ((points >= PAD) & (points < SIDE - PAD)).all(axis=(-1, -2))
    idx = np.clip(np.floor(points).astype(np.intp), 0, SIDE - 1)
    rows = np.arange(len(points))[:, None, None]
    hit = blocked[rows, idx[..., 0], idx[..., 1]].any(axis=-1)
    return inside & ~hit


def _footprint(points: np.ndarray) -> np.ndarray:
    """``(m, S, S)`` bool: the pixels within one pixel of each dash ``points (m, P, 2)``."""
    m = len(points)
    mask = np.zeros((m, SIDE + 2, SIDE + 2), bool)  # one pixel of margin for the dilation
    idx = np.clip(np.floor(points).astype(np.intp), 0, SIDE - 1) + 1
    rows = np.arange(m)[:, None]
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            mask[rows, idx[..., 0] + dy, idx[..., 1] + dx] = True
    return mask[:, 1:-1, 1:-1]


def _pick(weights: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One column per row of ``weights (m, K)``, drawn in proportion; and whether any weight was positive."""
    cum = np.cumsum(weights, axis=1)
    total = cum[:, -1]
    draw = rng.random(len(weights)) * total
    index = np.minimum((cum <= draw[:, None]).sum(axis=1), weights.shape[1] - 1)
    return index, total > 0


def _extend(end: np.ndarray, theta: np.ndarray, blocked: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The next dash of contours ending at ``end (m, 2)`` heading ``theta (m,)``.

    Returns its points ``(m, P, 2)``, its direction ``(m,)`` and whether a free one was found ``(m,)``.
    """
    m = len(end)
    limit = np.pi / (2 * CONTINUITY)
    turn = rng.uniform(-limit, limit, (m, CANDIDATES))
    heading = theta[:, None] + turn
    points = _dash_points(end[:, None, :], heading, lead=GAP)  # (m, K, P, 2)
    weights = np.cos(CONTINUITY * turn) ** 2 * _free(points, blocked)
    k, ok = _pick(weights, rng)
    rows = np.arange(m)
    return points[rows, k], heading[rows, k], ok


def _grow_targets(m: int, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two target contours in up to ``m`` images: ``(k, 2, L, 2, 2)`` dashes and ``(k, S, S)`` occupied pixels.

    Only the ``k <= m`` images whose both contours grew to ``length`` dashes are returned; the
    others are dropped as soon as a dash finds no room (most fail at ``L = 14``).
    """
    rows = np.arange(m)
    tip_a = rng.uniform(*SEED_BOX, (m, 2)).astype(np.float32)
    theta_a = rng.uniform(-np.pi, np.pi, m)
    first_a = _dash_points(tip_a, theta_a)  # (m, P, 2), inside: the box is central
    away = rng.uniform(-np.pi, np.pi, (m, CANDIDATES))
    theta_b = rng.uniform(-np.pi, np.pi, (m, CANDIDATES))
    cand_b = _dash_points(tip_a[:, None, :] + SEED_DISTANCE * _unit(away), theta_b)  # (m, K, P, 2)
    pending = [_footprint(first_a), None]
    k, ok = _pick(_free(cand_b, pending[0]).astype(np.float32), rng)
    first_b = cand_b[rows, k]
    pending[1] = _footprint(first_b)
    dashes = np.zeros((m, 2, length, 2, 2), np.float32)  # image, contour, dash, start/end, (y, x)
    dashes[:, 0, 0], dashes[:, 1, 0] = first_a[:, [0, -1]], first_b[:, [0, -1]]
    heading = [theta_a, theta_b[rows, k]]
    committed = np.zeros((m, SIDE, SIDE), bool)
    for i in range(1, length):
        for c in (0, 1):
            # a contour's newest dash joins the obstacles only once the next one is placed, so the
            # next may sit GAP pixels from it; the other contour's newest dash is an obstacle now
            points, heading[c], good = _extend(dashes[:, c, i - 1, 1], heading[c], committed | pending[1 - c], rng)
            ok &= good
            committed |= pending[c]
            pending[c] = _footprint(points)
            dashes[:, c, i] = points[:, [0, -1]]
        if not ok.all():  # drop the failed images: the rest grow faster
            keep = ok
            dashes, committed, ok = dashes[keep], committed[keep], ok[keep]
            pending = [p[keep] for p in pending]
            heading = [h[keep] for h in heading]
    return dashes, committed | pending[0] | pending[1]


def _grow_distractors(committed: np.ndarray, length: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Distractor contours around the targets (``committed`` is updated): dashes and whether drawn."""
    m = len(committed)
    rows = np.arange(m)
    count, dashes_each = distractor_plan(length)
    out = np.zeros((m, count, dashes_each, 2, 2), np.float32)
    drawn = np.zeros((m, count), bool)
    for j in range(count):
        starts = rng.uniform(PAD, SIDE - PAD, (m, CANDIDATES, 2)).astype(np.float32)
        theta = rng.uniform(-np.pi, np.pi, (m, CANDIDATES))
        cand = _dash_points(starts, theta)
        k, alive = _pick(_free(cand, committed).astype(np.float32), rng)
        points, heading = cand[rows, k], theta[rows, k]
        own, pending = committed.copy(), _footprint(points)
        out[:, j, 0] = points[:, [0, -1]]
        for i in range(1, dashes_each):
            points, heading, good = _extend(out[:, j, i - 1, 1], heading, own, rng)
            alive &= good
            own |= pending
            pending = _footprint(points)
            out[:, j, i] = points[:, [0, -1]]
        committed[alive] = (own | pending)[alive]
        drawn[:, j] = alive
    return out, drawn


def _draw(canvas: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float, show: np.ndarray) -> None:
    """Max-blend segments ``a -> b`` (``(m, 2)`` each; ``a == b`` for a disc) of half-width ``radius``.

    Intensity is ``clip(radius + 0.5 - distance, 0, 1)`` at each pixel centre: a one-pixel
    antialiasing ramp. ``canvas`` is ``(m, S + 2 * _OFF, S + 2 * _OFF)`` float; ``show (m,)`` masks images.
    """
    win = np.arange(_WINDOW)
    origin = np.floor(np.minimum(a, b)).astype(np.intp) - 2  # (m, 2): the window's top-left pixel
    ys = origin[:, 0, None] + win  # (m, W)
    xs = origin[:, 1, None] + win
    py, px = ys[:, :, None] + 0.5, xs[:, None, :] + 0.5  # pixel centres (m, W, 1) and (m, 1, W)
    ab = b - a
    length2 = np.maximum((ab ** 2).sum(axis=1), 1e-12)[:, None, None]
    t = np.clip(((py - a[:, 0, None, None]) * ab[:, 0, None, None]
                 + (px - a[:, 1, None, None]) * ab[:, 1, None, None]) / length2, 0.0, 1.0)
    dy = py - a[:, 0, None, None] - t * ab[:, 0, None, None]
    dx = px - a[:, 1, None, None] - t * ab[:, 1, None, None]
    value = np.clip(radius + 0.5 - np.sqrt(dy ** 2 + dx ** 2), 0.0, 1.0) * show[:, None, None]
    rows = np.arange(len(a))[:, None, None]
    yi = np.clip(ys + _OFF, 0, canvas.shape[1] - 1)[:, :, None]
    xi = np.clip(xs + _OFF, 0, canvas.shape[2] - 1)[:, None, :]
    canvas[rows, yi, xi] = np.maximum(canvas[rows, yi, xi], value)


def _render(targets: np.ndarray, distractors: np.ndarray, drawn: np.ndarray, markers: np.ndarray) -> np.ndarray:
    """The images ``(m, 32, 32)`` uint8 of the given contours and markers."""
    m = len(targets)
    canvas = np.zeros((m, SIDE + 2 * _OFF, SIDE + 2 * _OFF))
    every = np.ones(m, bool)
    for c in range(targets.shape[1]):
        for i in range(targets.shape[2]):
            _draw(canvas, targets[:, c, i, 0], targets[:, c, i, 1], LINE_WIDTH / 2, every)
    for j in range(distractors.shape[1]):
        for i in range(distractors.shape[2]):
            _draw(canvas, distractors[:, j, i, 0], distractors[:, j, i, 1], LINE_WIDTH / 2, drawn[:, j])
    for end in range(2):
        _draw(canvas, markers[:, end], markers[:, end], MARKER_RADIUS, every)
    return np.round(canvas[:, _OFF:_OFF + SIDE, _OFF:_OFF + SIDE] * 255).astype(np.uint8)


def render_pathfinder(labels: np.ndarray, length: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, PathfinderLayout]:
    """Pathfinder images: label 1 where the two markers sit on the ends of one contour, 0 where not.

    Parameters
    ----------
    labels : np.ndarray
        ``(N,)`` ints in ``{0, 1}``.
    length : int
        Dashes per target contour, one of :data:`LENGTHS`.
    rng : numpy.random.Generator
        All randomness; images whose target contours fail to grow are drawn again from it.

    Returns
    -------
    images : np.ndarray
        ``(N, 32, 32)`` uint8, white contours on black.
    layout : PathfinderLayout
        Every dash, the markers and which contours they mark.

    Examples
    --------
    >>> images, layout = render_pathfinder(np.array([0, 1]), 9, np.random.default_rng(0))
    >>> images.shape, layout.targets.shape
    ((2, 32, 32), (2, 2, 9, 2, 2))
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = len(labels)
    kept_t, kept_c, have = [], [], 0
    while have < n:  # draw again for the images whose targets could not grow
        need = n - have
        targets, committed = _grow_targets(max(2 * need, 16), length, rng)
        kept_t.append(targets[:need])
        kept_c.append(committed[:need])
        have += len(kept_t[-1])
    targets, committed = np.concatenate(kept_t), np.concatenate(kept_c)
    distractors, drawn = _grow_distractors(committed, length, rng)
    origin = rng.integers(0, 2, n)  # which target contour carries the origin marker
    terminal = np.where(labels == 1, origin, 1 - origin)
    rows = np.arange(n)
    markers = np.stack([targets[rows, origin, 0, 0], targets[rows, terminal, -1, 1]], axis=1)
    images = _render(targets, distractors, drawn, markers)
    layout = PathfinderLayout(targets=targets, distractors=distractors, drawn=drawn, markers=markers,
                              marked=np.stack([origin, terminal], axis=1))
    return images, layout
