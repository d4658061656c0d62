"""Word count: count the words of a generated text in chunks, merge the counts pairwise, keep the
most common.

Run it:  shoal run examples/word_count.py [--small]
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import shoal

WORDS = (
    "the of and to a in is it you that he was for on are with as his they be "
    "at one have this from or had by hot word but what some we can out other"
)
VOCAB = WORDS.split()
# Zipf-like weights: the first words of VOCAB are the most common.
WEIGHTS = [1 / (rank + 1) for rank in range(len(VOCAB))]
SEED = 42


def chunk_text(i: int, n_words: int) -> str:
    """Chunk i of the text: n_words words drawn from VOCAB by a generator seeded by i."""
    rng = random.Random(SEED * 1_000_003 + i)
    return " ".join(rng.choices(VOCAB, weights=WEIGHTS, k=n_words))


@shoal.task
def make_chunk(i: int, n_words: int) -> str:
    """Stand-in for reading one file: the text is made on the worker, from its seed."""
    return chunk_text(i, n_words)


@shoal.task
def count(text: str) -> dict[str, int]:
    return dict(Counter(text.split()))


@shoal.task
def merge(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    total = Counter(a)
    total.update(b)
    return dict(total)


@shoal.task
def top(counts: dict[str, int], k: int) -> list[list[str | int]]:
    """The k most common words as [word, count] pairs, by count descending, then by word."""
    ranked = sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))
    return [[word, n] for word, n in ranked[:k]]


def word_count(
    n_chunks: int,
    words_per_chunk: int,
    k: int,
    make: Callable[[Callable[..., Any]], Any] = shoal.task,
) -> Any:
    """The graph. ``make`` turns each plain function (``task.func``) into a lazy one:
    ``shoal.task`` here; the benchmarks also pass ``dask.delayed``, for the same graph on Dask."""
    make_chunk_, count_, merge_, top_ = (make(t.func) for t in (make_chunk, count, merge, top))
    level = [count_(make_chunk_(i, words_per_chunk)) for i in range(n_chunks)]
    while len(level) > 1:
        pairs = [merge_(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + level[len(pairs) * 2 :]  # an odd one out moves up a level
    return top_(level[0], k)


def main() -> None:
    n_chunks, words_per_chunk = (10, 500) if "--small" in sys.argv else (40, 5000)
    n_words, k = n_chunks * words_per_chunk, 5
    graph = word_count(n_chunks, words_per_chunk, k)
    start = time.perf_counter()
    result = graph.compute()
    elapsed = time.perf_counter() - start
    counts = Counter(w for i in range(n_chunks) for w in chunk_text(i, words_per_chunk).split())
    expected = [[word, n] for word, n in sorted(counts.items(), key=lambda wc: (-wc[1], wc[0]))]
    print(f"word count of {n_words} words in {n_chunks} chunks: top {k} = {json.dumps(result)}")
    print(f"computed in {elapsed:.2f} s")
    if result != expected[:k]:
        raise SystemExit(f"wrong result: expected {json.dumps(expected[:k])}")


if __name__ == "__main__":
    main()
