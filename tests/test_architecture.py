"""docs/architecture.md matches the code: every path it names exists, and every module of the
package and every source file of the Rust crates is named in it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "architecture.md"


def named_paths() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    return set(re.findall(r"`((?:python|rust|tests|docs)/[\w/.-]+\.(?:py|rs|pyi|md))`", text))


def test_every_path_the_architecture_names_exists() -> None:
    paths = named_paths()
    assert len(paths) > 40, "the page names the files it describes"
    missing = sorted(p for p in paths if not (ROOT / p).is_file())
    assert missing == [], f"docs/architecture.md names files that do not exist: {missing}"


def test_every_source_file_is_described() -> None:
    sources = [
        *(ROOT / "python" / "shoal").rglob("*.py"),
        *(ROOT / "rust").glob("*/src/*.rs"),
    ]
    described = named_paths()
    skip = {"__init__.py"}  # package markers, except the top one (named)
    left_out = sorted(
        str(p.relative_to(ROOT))
        for p in sources
        if str(p.relative_to(ROOT)) not in described
        and not (p.name in skip and p.parent.name != "shoal")
    )
    assert left_out == [], f"docs/architecture.md does not say what these hold: {left_out}"
