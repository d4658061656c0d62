"""Drawing task graphs: ``shoal.visualize`` and ``Node.visualize``."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

import shoal
from shoal import visualize as vis
from shoal.errors import ConfigError
from shoal.visualize import visualize

SVG = "{http://www.w3.org/2000/svg}"


@shoal.task
def add(x: Any, y: Any) -> Any:
    return x + y


@shoal.task
def inc(x: Any) -> Any:
    return x + 1


@shoal.task(name='<odd & "name">')
def odd(x: Any) -> Any:
    return x


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    return root


def node_elements(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if "node" in g.get("class", "").split()]


def edge_elements(root: ET.Element) -> list[ET.Element]:
    return [p for p in root.iter(f"{SVG}path") if p.get("class") == "edge"]


def labels(root: ET.Element) -> dict[int, str]:
    out = {}
    for g in node_elements(root):
        text = g.find(f"{SVG}text")
        assert text is not None and g.find(f"{SVG}rect") is not None
        out[int(g.get("data-id", "-1"))] = text.text or ""
    return out


def outputs(root: ET.Element) -> set[int]:
    return {
        int(g.get("data-id", "-1")) for g in node_elements(root) if "output" in g.get("class", "")
    }


def edges(root: ET.Element) -> list[tuple[int, int]]:
    return [
        (int(p.get("data-from", "-1")), int(p.get("data-to", "-1"))) for p in edge_elements(root)
    ]


def node_x(root: ET.Element) -> dict[int, float]:
    xs = {}
    for g in node_elements(root):
        rect = g.find(f"{SVG}rect")
        assert rect is not None
        xs[int(g.get("data-id", "-1"))] = float(rect.get("x", "nan"))
    return xs


def test_diamond_svg_nodes_edges_and_output() -> None:
    svg = add(add(1, 2), add(3, 4)).visualize()
    root = parse(svg)
    assert labels(root) == {0: "add-0", 1: "add-1", 2: "add-2"}
    assert sorted(edges(root)) == [(0, 2), (1, 2)]
    assert outputs(root) == {2}
    # Left to right by level: both roots in one column, the sum to their right.
    xs = node_x(root)
    assert xs[0] == xs[1] < xs[2]
    # Everything lies inside the declared canvas.
    width = float(root.get("width", "0"))
    assert all(x >= 0 and x < width for x in xs.values())


def test_maps_are_drawn_as_one_node_marked_per_item() -> None:
    import shoal

    chain = shoal.map(inc, shoal.map(inc, [1, 2]))
    root = parse(add(chain, 0).visualize())
    assert labels(root) == {0: "items-0", 1: "inc[*]-1", 2: "inc[*]-2", 3: "add-3"}
    assert sorted(edges(root)) == [(0, 1), (1, 2), (2, 3)]


def test_function_form_matches_method() -> None:
    n = add(add(1, 2), 3)
    assert visualize(n) == n.visualize()


def test_shared_dependency_is_one_edge_and_levels_use_longest_path() -> None:
    a = inc(1)
    b = inc(a)
    c = add(a, b)  # a -> c is a skip edge: c sits at level 2, after b
    d = add(a, a)  # the same dependency twice is still one edge
    root = parse(visualize([c, d]))
    assert len(node_elements(root)) == 4
    got = edges(root)
    assert len(got) == len(set(got)) == 4
    assert outputs(root) == {2, 3}
    xs = node_x(root)
    assert xs[0] < xs[1] < xs[2]
    assert xs[3] == xs[1]


def test_several_outputs_and_duplicates() -> None:
    x = inc(1)
    y = inc(x)
    z = inc(5)
    root = parse(visualize([y, x, z, y]))
    assert set(labels(root).values()) == {"inc-0", "inc-1", "inc-2"}
    assert len(outputs(root)) == 3
    assert len(edge_elements(root)) == 1


def test_labels_are_escaped() -> None:
    svg = odd(1).visualize()
    assert '<odd & "name">' not in svg
    root = parse(svg)
    assert list(labels(root).values()) == ['<odd & "name">-0']


def test_long_labels_are_cut_but_kept_in_tooltip() -> None:
    name = "x" * 200
    root = parse(inc.options(name=name)(1).visualize())
    (g,) = node_elements(root)
    text, title = g.find(f"{SVG}text"), g.find(f"{SVG}title")
    assert text is not None and title is not None
    assert text.text is not None and len(text.text) == vis.MAX_LABEL
    assert title.text is not None and title.text.startswith(name + "-0")


def test_html_embeds_the_svg() -> None:
    n = add(add(1, 2), add(3, 4))
    svg = n.visualize()
    page = n.visualize(format="html")
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>shoal graph (3 tasks)</title>" in page
    assert svg in page
    start, end = page.index("<svg"), page.index("</svg>") + len("</svg>")
    assert len(node_elements(parse(page[start:end]))) == 3


@pytest.mark.parametrize(
    ("name", "format", "expect"),
    [
        ("g.svg", None, "svg"),
        ("g.SVG", None, "svg"),
        ("g.html", None, "html"),
        ("graph", None, "svg"),
        ("g.txt", "svg", "svg"),
        ("g.svg", "html", "html"),
    ],
)
def test_writes_file(tmp_path: Path, name: str, format: vis.Format | None, expect: str) -> None:
    n = add(inc(1), 2)
    target = tmp_path / name
    text = visualize(n, target, format=format)
    assert target.read_text(encoding="utf-8") == text
    if expect == "html":
        assert text.startswith("<!DOCTYPE html>")
    else:
        assert len(node_elements(parse(text))) == 2


def test_method_accepts_str_path(tmp_path: Path) -> None:
    target = tmp_path / "g.html"
    page = inc(1).visualize(str(target))
    assert target.read_text(encoding="utf-8") == page
    assert "<svg" in page


def test_unknown_format_raises() -> None:
    with pytest.raises(ConfigError, match=r"valid formats are svg, png, html"):
        inc(1).visualize(format="pdf")  # type: ignore[arg-type]


def test_unknown_suffix_raises(tmp_path: Path) -> None:
    target = tmp_path / "g.pdf"
    with pytest.raises(ConfigError, match=r"svg, png, html"):
        inc(1).visualize(str(target))
    assert not target.exists()


def test_png_without_dot_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda *a, **k: None)
    target = tmp_path / "g.png"
    with pytest.raises(ConfigError, match=r"dot.*\.svg or \.html"):
        inc(1).visualize(str(target))
    with pytest.raises(ConfigError, match="dot"):
        inc(1).visualize(format="png")
    assert not target.exists()


def test_png_with_fake_dot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[list[str], bytes]] = []

    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        assert "shell" not in kwargs
        data = kwargs["input"]
        assert isinstance(data, bytes)
        calls.append((argv, data))
        Path(argv[-1]).write_bytes(b"\x89PNG fake")
        return subprocess.CompletedProcess(argv, 0, b"", b"")

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: f"/opt/bin/{name}")
    monkeypatch.setattr(subprocess, "run", fake_run)
    target = tmp_path / "g.png"
    dot = add(add(1, 2), odd(3)).visualize(str(target))
    ((argv, data),) = calls
    assert argv == ["/opt/bin/dot", "-Tpng", "-o", str(target)]
    assert data.decode() == dot
    assert dot.startswith("digraph shoal {")
    assert dot.count("->") == 2
    assert 't1 [label="<odd & \\"name\\">-1"];' in dot
    assert "penwidth" in dot.split("t2 [", 1)[1].split("\n", 1)[0]
    assert target.read_bytes().startswith(b"\x89PNG")


def test_png_dot_failure_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.CompletedProcess(argv, 1, b"", b"Error: boom")

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: f"/opt/bin/{name}")
    monkeypatch.setattr(subprocess, "run", fake_run)
    with pytest.raises(shoal.ShoalError, match="boom"):
        inc(1).visualize(str(tmp_path / "g.png"))


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz dot is not installed")
def test_png_with_real_dot(tmp_path: Path) -> None:
    target = tmp_path / "g.png"
    add(add(1, 2), 3).visualize(str(target))
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_rejects_non_nodes() -> None:
    with pytest.raises(TypeError, match="Node"):
        visualize(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        visualize([inc(1), "nope"])  # type: ignore[list-item]


def test_long_chain() -> None:
    n = inc(0)
    for _ in range(2999):
        n = inc(n)
    root = parse(n.visualize())
    assert len(node_elements(root)) == 3000
    assert len(edge_elements(root)) == 2999
    assert outputs(root) == {2999}
    xs = node_x(root)
    assert all(xs[i] < xs[i + 1] for i in range(2999))


def test_wide_level_wraps_into_columns() -> None:
    leaves = [inc(i) for i in range(3 * vis.MAX_ROWS + 1)]
    total = add(leaves, 0)
    root = parse(total.visualize())
    assert len(node_elements(root)) == len(leaves) + 1
    assert len(edge_elements(root)) == len(leaves)
    xs = node_x(root)
    leaf_columns = {xs[i] for i in range(len(leaves))}
    assert len(leaf_columns) == 4
    assert xs[len(leaves)] > max(leaf_columns)
    # The canvas is bounded by MAX_ROWS rows, not by the number of leaves.
    assert float(root.get("height", "0")) < (vis.MAX_ROWS + 2) * 50
