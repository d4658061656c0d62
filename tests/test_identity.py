"""Function and workflow identities: what history will be keyed by (issue 15)."""

from __future__ import annotations

import functools
import subprocess
import sys
import textwrap
from typing import Any

import shoal
from shoal.graph import freeze
from shoal.identity import function_id, function_ids, workflow_id


@shoal.task
def leaf(i: int) -> int:
    return i


@shoal.task
def add(a: int, b: int) -> int:
    return a + b


@shoal.task
def total(xs: list[int]) -> int:
    return sum(xs)


def tree(n: int) -> shoal.Node[int]:
    level = [leaf(i) for i in range(n)]
    while len(level) > 1:
        level = [add(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def fan(n: int) -> shoal.Node[int]:
    root = leaf(0)
    return total([add(root, i) for i in range(n)])


def wid(node: shoal.Node[Any]) -> str:
    frozen = freeze([node])
    return workflow_id(frozen.graph, function_ids(frozen.live_functions))


def test_a_workflow_is_the_same_at_any_size_and_differs_by_shape_or_function() -> None:
    assert wid(tree(64)) == wid(tree(1024))
    assert wid(fan(10)) == wid(fan(1000))
    assert wid(tree(64)) != wid(fan(64))  # the same functions, another shape

    @shoal.task(name="add")
    def add_other(a: int, b: int) -> int:
        return a - b

    def other_tree(n: int) -> shoal.Node[int]:
        level = [leaf(i) for i in range(n)]
        while len(level) > 1:
            level = [add_other(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        return level[0]

    assert wid(other_tree(64)) != wid(tree(64))  # one function changed


def make_scaler(k: int) -> Any:
    def scale(x: int) -> int:
        return x * k

    return scale


def test_a_function_is_its_name_and_its_code_not_what_it_captured() -> None:
    assert function_id(make_scaler(2)) == function_id(make_scaler(3))

    def f(x: int) -> int:
        return x + 1

    first = function_id(f)

    def f(x: int) -> int:  # type: ignore[no-redef]  # the same name, other code
        return x + 2

    assert function_id(f) != first and function_id(f).name == first.name
    assert function_id(add.func).name == "test_identity:add"
    # Wrappers are known by what they wrap.
    assert function_id(functools.partial(add.func, 1)) == function_id(add.func)
    assert function_id(len).name == "builtins:len"


def test_a_code_hash_is_the_same_in_another_process() -> None:
    """String hashing differs between processes (a frozenset constant's order with it): the
    identity must not."""
    script = textwrap.dedent(
        """
        from shoal.identity import function_id
        def f(x):
            return x in {"alpha", "beta", "gamma", "delta"}
        print(function_id(f).code)
        """
    )
    codes = {
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": str(seed), "PATH": ""},
        ).stdout.strip()
        for seed in (1, 2, 3)
    }
    assert len(codes) == 1 and len(next(iter(codes))) == 32


def test_a_run_announces_its_workflow(redis_url: str) -> None:
    from conftest import session_for
    from shoal.events import RunSubmitted

    with session_for("processes", redis_url) as s:
        small, large = s.submit(tree(8)), s.submit(tree(64))
        assert small.result(timeout=60) == (sum(range(8)),)
        assert large.result(timeout=60) == (sum(range(64)),)
        [a] = [e for e in small.events() if isinstance(e, RunSubmitted)]
        [b] = [e for e in large.events() if isinstance(e, RunSubmitted)]
    assert a.workflow == b.workflow == wid(tree(16)) and len(a.workflow) == 32
