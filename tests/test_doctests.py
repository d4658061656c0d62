"""The examples in module docstrings run as written (the worker machine's and the package's)."""

from __future__ import annotations

import doctest
import types

import pytest

import shoal
import shoal.runtime.machine


@pytest.mark.parametrize("module", [shoal, shoal.runtime.machine], ids=lambda m: m.__name__)
def test_docstring_examples_run(module: types.ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, "the module has no example to run"
    assert result.failed == 0
