"""Montage-like mosaic: overlapping images of one sky, each with its own unknown background
level, reprojected onto a common grid, background-matched and co-added.

The steps of Montage (mProject, mDiff + mFitplane, mBgModel, mBackground, mAdd), in small:

1. each input image covers a window of a generated sky at a known sub-pixel offset, plus a
   constant background of its own and noise; it is made on a worker from its seed;
2. reproject: bilinear resampling of each image onto the integer pixel grid of the mosaic;
3. for each pair of neighbouring images, the mean difference over their overlap (a constant
   background model per pair);
4. one global fit: per-image background levels that best explain the pairwise differences
   (least squares, levels summing to zero);
5. each reprojected image minus its level;
6. co-add: the mosaic is the mean of the corrected images over each pixel's coverage.

Run it:  shoal run examples/montage.py [--small]
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import shoal

SEED = 11


def sky(y: np.ndarray, x: np.ndarray, extent: float) -> np.ndarray:
    """The true sky at (y, x): a gentle gradient and 24 Gaussian "stars" placed by SEED."""
    rng = np.random.default_rng(SEED)
    value = 0.002 * y - 0.001 * x
    for cy, cx, flux, width in zip(
        rng.uniform(0, extent, 24),
        rng.uniform(0, extent, 24),
        rng.uniform(5.0, 50.0, 24),
        rng.uniform(1.5, 4.0, 24),
        strict=True,
    ):
        value = value + flux * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * width**2))
    return value


def footprint(k: int, grid: int, size: int) -> tuple[float, float]:
    """Sky position (y, x) of pixel (0, 0) of input k: a regular grid with overlaps, jittered by
    a sub-pixel-and-more amount drawn from (SEED, k)."""
    step = size * 3 // 4
    jitter = np.random.default_rng((SEED, k)).uniform(0.0, 3.0, 2)
    return (k // grid) * step + float(jitter[0]), (k % grid) * step + float(jitter[1])


def observe(k: int, grid: int, size: int) -> np.ndarray:
    """Input image k: the sky over its footprint, plus its background level and noise."""
    oy, ox = footprint(k, grid, size)
    rng = np.random.default_rng((SEED, k, 1))
    background = rng.uniform(-5.0, 5.0)
    r = np.arange(size, dtype=np.float64)
    pixels = sky(oy + r[:, None], ox + r[None, :], extent=grid * size * 3 / 4 + size)
    return pixels + background + rng.normal(0.0, 0.01, (size, size))


def neighbours(grid: int) -> list[tuple[int, int]]:
    """Pairs of inputs that overlap: each image and the next one right and down."""
    pairs = []
    for k in range(grid * grid):
        if k % grid + 1 < grid:
            pairs.append((k, k + 1))
        if k // grid + 1 < grid:
            pairs.append((k, k + grid))
    return pairs


@shoal.task
def make_input(k: int, grid: int, size: int) -> dict[str, Any]:
    oy, ox = footprint(k, grid, size)
    return {"k": k, "y": oy, "x": ox, "pixels": observe(k, grid, size)}


@shoal.task
def reproject(image: dict[str, Any]) -> dict[str, Any]:
    """Bilinear resampling onto the integer grid: output pixel (Y, X) is the input at
    (Y - y, X - x), for every integer Y, X inside the input (one row and column fewer)."""
    a = image["pixels"]
    y0, x0 = math.ceil(image["y"]), math.ceil(image["x"])
    fy, fx = y0 - image["y"], x0 - image["x"]
    out = (
        (1 - fy) * (1 - fx) * a[:-1, :-1]
        + (1 - fy) * fx * a[:-1, 1:]
        + fy * (1 - fx) * a[1:, :-1]
        + fy * fx * a[1:, 1:]
    )
    return {"k": image["k"], "y": y0, "x": x0, "pixels": out}


def overlap(a: dict[str, Any], b: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The pixels of a and of b over the part of the grid both cover."""
    (ha, wa), (hb, wb) = a["pixels"].shape, b["pixels"].shape
    y0, y1 = max(a["y"], b["y"]), min(a["y"] + ha, b["y"] + hb)
    x0, x1 = max(a["x"], b["x"]), min(a["x"] + wa, b["x"] + wb)
    pa = a["pixels"][y0 - a["y"] : y1 - a["y"], x0 - a["x"] : x1 - a["x"]]
    pb = b["pixels"][y0 - b["y"] : y1 - b["y"], x0 - b["x"] : x1 - b["x"]]
    return pa, pb


@shoal.task
def difference(a: dict[str, Any], b: dict[str, Any]) -> list[float]:
    """[k of a, k of b, fitted constant a - b over the overlap, overlap pixels]."""
    pa, pb = overlap(a, b)
    return [a["k"], b["k"], float(np.mean(pa - pb)), int(pa.size)]


@shoal.task
def background_model(fits: list[list[float]], n_images: int) -> list[float]:
    """Levels b minimising sum over pairs of (b_i - b_j - d_ij)**2, with sum(b) = 0."""
    rows = np.zeros((len(fits) + 1, n_images))
    rhs = np.zeros(len(fits) + 1)
    for row, (i, j, d, _) in enumerate(fits):
        rows[row, int(i)], rows[row, int(j)], rhs[row] = 1.0, -1.0, d
    rows[-1, :] = 1.0
    levels, *_ = np.linalg.lstsq(rows, rhs, rcond=None)
    return [float(b) for b in levels]


@shoal.task
def correct(image: dict[str, Any], levels: list[float]) -> dict[str, Any]:
    return {**image, "pixels": image["pixels"] - levels[image["k"]]}


@shoal.task
def coadd(images: list[dict[str, Any]]) -> np.ndarray:
    """Mean of the images over each pixel's coverage (NaN where nothing covers it)."""
    y0 = min(im["y"] for im in images)
    x0 = min(im["x"] for im in images)
    y1 = max(im["y"] + im["pixels"].shape[0] for im in images)
    x1 = max(im["x"] + im["pixels"].shape[1] for im in images)
    total = np.zeros((y1 - y0, x1 - x0))
    count = np.zeros((y1 - y0, x1 - x0))
    for im in images:
        h, w = im["pixels"].shape
        total[im["y"] - y0 : im["y"] - y0 + h, im["x"] - x0 : im["x"] - x0 + w] += im["pixels"]
        count[im["y"] - y0 : im["y"] - y0 + h, im["x"] - x0 : im["x"] - x0 + w] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count


def montage(grid: int, size: int, make: Callable[[Callable[..., Any]], Any] = shoal.task) -> Any:
    """The graph for grid x grid inputs of size x size pixels. ``make`` turns each plain
    function (``task.func``) into a lazy one: ``shoal.task`` here; the benchmarks also pass
    ``dask.delayed``, for the same graph on Dask."""
    make_input_, reproject_, difference_, background_model_, correct_, coadd_ = (
        make(t.func) for t in (make_input, reproject, difference, background_model, correct, coadd)
    )
    n = grid * grid
    projected = [reproject_(make_input_(k, grid, size)) for k in range(n)]
    fits = [difference_(projected[i], projected[j]) for i, j in neighbours(grid)]
    levels = background_model_(fits, n)
    return coadd_([correct_(p, levels) for p in projected])


def reference(grid: int, size: int) -> np.ndarray:
    """The same steps one after the other, with no task graph."""
    n = grid * grid
    projected = [reproject.func(make_input.func(k, grid, size)) for k in range(n)]
    fits = [difference.func(projected[i], projected[j]) for i, j in neighbours(grid)]
    levels = background_model.func(fits, n)
    return coadd.func([correct.func(p, levels) for p in projected])


def main() -> None:
    grid, size = (3, 32) if "--small" in sys.argv else (6, 128)
    graph = montage(grid, size)
    start = time.perf_counter()
    mosaic = graph.compute()
    elapsed = time.perf_counter() - start
    expected = reference(grid, size)
    h, w = mosaic.shape
    print(
        f"montage of {grid * grid} images of {size}x{size} into {h}x{w}: "
        f"checksum {float(np.nansum(mosaic)):.6f}, covered {int(np.isfinite(mosaic).sum())}"
    )
    print(f"computed in {elapsed:.2f} s")
    if mosaic.shape != expected.shape or not np.allclose(mosaic, expected, equal_nan=True):
        raise SystemExit(f"wrong result: expected checksum {float(np.nansum(expected)):.6f}")


if __name__ == "__main__":
    main()
