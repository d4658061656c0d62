"""Image pipeline: a generated 2,048 x 2,048 image in 256 x 256 tiles; a 3x3 blur per tile with a
1-pixel halo from its neighbours, normalised to the whole image's range with a gamma curve, then
merged and summarised.

Each tile is made on a worker from the seed and its position (no image travels from the client).
A tile hands its neighbours only its borders (the halo), not the whole tile. The normalisation
needs the range of the whole image: a small reduction of per-tile ranges, broadcast back.

Run it:  shoal run examples/image_pipeline.py [--small]
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import shoal

SEED = 7
GAMMA = 0.8
#: Rows (or columns) of a tile a neighbour needs, by the neighbour's direction from the tile:
#: the one below (+1) needs the last row, the one above (-1) the first, the same band (0) all.
SIDE = {-1: slice(0, 1), 0: slice(None), 1: slice(-1, None)}


def tile_pixels(i: int, j: int, size: int) -> np.ndarray:
    """Tile (i, j) of the image: smooth stripes plus noise, float32, from a generator seeded by
    (SEED, i, j). The whole image is ``np.block`` of its tiles."""
    rng = np.random.default_rng((SEED, i, j))
    y = np.arange(i * size, (i + 1) * size, dtype=np.float32)[:, None]
    x = np.arange(j * size, (j + 1) * size, dtype=np.float32)[None, :]
    stripes = np.sin(y / 37.0) * np.cos(x / 23.0)
    pixels: np.ndarray = (100.0 + 40.0 * stripes + rng.normal(0.0, 10.0, (size, size))).astype(
        np.float32
    )
    return pixels


def box_blur(padded: np.ndarray) -> np.ndarray:
    """3x3 mean of an array padded by one pixel on every side (the result loses the padding)."""
    h, w = padded.shape[0] - 2, padded.shape[1] - 2
    total = np.zeros((h, w), dtype=padded.dtype)
    for dy in range(3):
        for dx in range(3):
            total += padded[dy : dy + h, dx : dx + w]
    return total / np.float32(9.0)


def tone(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Scale to [0, 1] by the image's range, then a gamma curve."""
    scaled = (x - np.float32(lo)) / np.float32(hi - lo)
    toned: np.ndarray = np.power(np.clip(scaled, 0.0, 1.0), np.float32(GAMMA)).astype(np.float32)
    return toned


@shoal.task
def make_tile(i: int, j: int, size: int) -> np.ndarray:
    return tile_pixels(i, j, size)


@shoal.task
def tile_range(tile: np.ndarray) -> list[float]:
    return [float(tile.min()), float(tile.max())]


@shoal.task
def image_range(ranges: list[list[float]]) -> list[float]:
    return [min(r[0] for r in ranges), max(r[1] for r in ranges)]


@shoal.task
def borders(tile: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """What each of the 8 neighbours needs of this tile, keyed by its direction (dy, dx)."""
    return {
        (dy, dx): tile[SIDE[dy], SIDE[dx]].copy()
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if (dy, dx) != (0, 0)
    }


@shoal.task
def blur(tile: np.ndarray, halo: list[list[Any]]) -> np.ndarray:
    """3x3 blur of a tile. ``halo[a][b]`` holds the borders of the neighbour at (a - 1, b - 1)
    from this tile, None outside the image; there the image's edge pixels are repeated, as
    ``np.pad(image, 1, mode="edge")`` does for the whole image."""
    rows = [a for a in range(3) if a == 1 or halo[a][1] is not None]
    cols = [b for b in range(3) if b == 1 or halo[1][b] is not None]
    # A neighbour at (a - 1, b - 1) sends what a tile in direction (1 - a, 1 - b) from it needs.
    window = np.block(
        [[tile if (a, b) == (1, 1) else halo[a][b][(1 - a, 1 - b)] for b in cols] for a in rows]
    )
    pad = ((int(0 not in rows), int(2 not in rows)), (int(0 not in cols), int(2 not in cols)))
    return box_blur(np.pad(window, pad, mode="edge"))


@shoal.task
def normalise(tile: np.ndarray, lo_hi: list[float]) -> np.ndarray:
    return tone(tile, lo_hi[0], lo_hi[1])


@shoal.task
def merge(rows: list[list[np.ndarray]]) -> np.ndarray:
    return np.block(rows)


@shoal.task
def statistics(image: np.ndarray) -> dict[str, Any]:
    counts, _ = np.histogram(image, bins=8, range=(0.0, 1.0))
    return {
        "shape": list(image.shape),
        "mean": float(image.mean(dtype=np.float64)),
        "std": float(image.std(dtype=np.float64)),
        "min": float(image.min()),
        "max": float(image.max()),
        "histogram": [int(c) for c in counts],
    }


def image_pipeline(
    n: int, size: int, make: Callable[[Callable[..., Any]], Any] = shoal.task
) -> Any:
    """The graph for an n x n grid of size x size tiles. ``make`` turns each plain function
    (``task.func``) into a lazy one: ``shoal.task`` here; the benchmarks also pass
    ``dask.delayed``, for the same graph on Dask."""
    make_tile_, tile_range_, image_range_, borders_, blur_, normalise_, merge_, statistics_ = (
        make(t.func)
        for t in (
            make_tile,
            tile_range,
            image_range,
            borders,
            blur,
            normalise,
            merge,
            statistics,
        )
    )
    tiles = [[make_tile_(i, j, size) for j in range(n)] for i in range(n)]
    edges = [[borders_(t) for t in row] for row in tiles]
    lo_hi = image_range_([tile_range_(t) for row in tiles for t in row])

    def neighbour(i: int, j: int) -> Any:
        return edges[i][j] if 0 <= i < n and 0 <= j < n else None

    out = [
        [
            normalise_(
                blur_(
                    tiles[i][j],
                    [[neighbour(i + a - 1, j + b - 1) for b in range(3)] for a in range(3)],
                ),
                lo_hi,
            )
            for j in range(n)
        ]
        for i in range(n)
    ]
    return statistics_(merge_(out))


def reference(n: int, size: int) -> dict[str, Any]:
    """The same filters on the whole image at once, in plain numpy."""
    image = np.block([[tile_pixels(i, j, size) for j in range(n)] for i in range(n)])
    toned = tone(box_blur(np.pad(image, 1, mode="edge")), float(image.min()), float(image.max()))
    return statistics.func(toned)


def main() -> None:
    n, size = (4, 64) if "--small" in sys.argv else (8, 256)
    graph = image_pipeline(n, size)
    start = time.perf_counter()
    stats = graph.compute()
    elapsed = time.perf_counter() - start
    expected = reference(n, size)
    side = n * size
    print(
        f"image pipeline of {side}x{side} in {n * n} tiles: mean {stats['mean']:.9f}, "
        f"std {stats['std']:.9f}, histogram {stats['histogram']}"
    )
    print(f"computed in {elapsed:.2f} s")
    if stats != expected:
        raise SystemExit(f"wrong result: expected {expected}")


if __name__ == "__main__":
    main()
