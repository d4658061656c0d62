"""A worker process imports only what a worker needs (DESIGN §3): not the client, the CLI, the
planners or the web stack. Checked in a fresh interpreter, where ``sys.modules`` shows
everything loaded."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: Never loaded by a worker process (``shoal/__init__`` loads the session side lazily).
_WORKER_MUST_NOT_LOAD = [
    "shoal.cli",
    "shoal.client",
    "shoal.session",
    "shoal.planning",
    "shoal.progress",
    "shoal.server",
    "shoal.visualize",
    "click",
    "rich",
]

_LIST_MODULES = (
    "import sys, json; import shoal.runtime.process; print(json.dumps(list(sys.modules)))"
)


@pytest.fixture(scope="module")
def worker_modules() -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", _LIST_MODULES], capture_output=True, text=True, check=True
    )
    return set(json.loads(out.stdout))


def test_the_worker_entry_point_is_what_was_imported(worker_modules: set[str]) -> None:
    assert "shoal.runtime.process" in worker_modules  # the check below looks at a real import


@pytest.mark.parametrize("module", _WORKER_MUST_NOT_LOAD)
def test_a_worker_process_does_not_load(worker_modules: set[str], module: str) -> None:
    assert module not in worker_modules


def test_the_package_still_offers_the_session_side() -> None:
    import shoal

    assert shoal.compute is shoal.session.compute and shoal.Session.__name__ == "Session"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        shoal.nope  # noqa: B018
