"""Drawing a task graph as SVG, HTML or (through Graphviz) PNG, with no extra dependencies.

The layout is layered, left to right. Every task sits in the column of its *level*: the length of
the longest dependency path that reaches it (``Graph.levels()``), so roots are in the first column,
every edge points rightwards and a task is drawn one column after its deepest dependency. Within
a column, tasks are ordered by one barycenter pass (the mean height of their dependencies, roots
in id order), which removes most crossings in the fan-in/fan-out shapes task graphs tend to have,
and each column is centred vertically. A column holding more than :data:`MAX_ROWS` tasks wraps
into several sub-columns, so a wide fan-out stays a sensible height.

Each task is a rounded rectangle labelled ``name-id``; each dependency is one curve from the
dependency's right edge to the task's left edge; the requested outputs are highlighted. The whole
layout is one pass over the tasks and edges (no recursion), so graphs with many thousands of
tasks draw in linear time (plus a sort per column).

PNG is delegated to Graphviz ``dot`` when it is installed: the graph is written as DOT text to
``dot -Tpng`` on its standard input. Without ``dot``, ask for ``.svg`` or ``.html`` instead.
"""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from .errors import ConfigError, ShoalError, UsageError
from .graph import freeze
from .task import Node

Format = Literal["svg", "png", "html"]

FORMATS: tuple[Format, ...] = ("svg", "png", "html")

#: Tasks per drawn column; a level with more tasks wraps into several sub-columns.
MAX_ROWS = 100
#: Labels longer than this are cut (with an ellipsis); the full label stays in the tooltip.
MAX_LABEL = 40

_CHAR_W = 7.2  # approximate advance of one character at the 12px monospace font used
_NODE_H = 28
_MIN_NODE_W = 72
_H_GAP = 56
_V_GAP = 14
_MARGIN = 20

_STYLE = (
    ".node rect{fill:#eef3fb;stroke:#4a6fa5;stroke-width:1.2}"
    ".node.output rect{fill:#fff4d6;stroke:#d08700;stroke-width:2.5}"
    ".node text{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;fill:#1d2733}"
    ".edge{fill:none;stroke:#7d8a99;stroke-width:1.1}"
)


class _Layout:
    """Positions of the tasks and the edges between them, shared by the SVG and DOT writers."""

    __slots__ = ("edges", "height", "ids", "labels", "node_w", "outputs", "pos", "width", "workers")

    def __init__(self, nodes: list[Node[Any]]) -> None:
        frozen = freeze(nodes)
        graph = frozen.graph
        self.ids: list[int] = graph.task_ids()
        levels = graph.levels()
        known = set(self.ids)
        self.outputs: set[int] = set(frozen.output_ids)
        maps = {m.id for m in graph.maps()}  # shoal.map: one task per item, drawn as name[*]
        self.labels: dict[int, str] = {
            i: f"{graph.name(i)}{'[*]' if i in maps else ''}-{i}" for i in self.ids
        }
        self.workers: dict[int, int | None] = {i: graph.worker(i) for i in self.ids}
        deps: dict[int, list[int]] = {
            i: [d for d in dict.fromkeys(graph.deps(i)) if d in known] for i in self.ids
        }
        self.edges: list[tuple[int, int]] = [(d, i) for i in self.ids for d in deps[i]]

        longest = max((len(label) for label in self.labels.values()), default=0)
        self.node_w = max(_MIN_NODE_W, round(min(longest, MAX_LABEL) * _CHAR_W) + 24)

        layers: list[list[int]] = [[] for _ in range(max(levels, default=-1) + 1)]
        for task_id, level in zip(self.ids, levels, strict=True):
            layers[level].append(task_id)

        pitch = _NODE_H + _V_GAP
        tallest = min(max((len(layer) for layer in layers), default=0), MAX_ROWS)
        self.pos: dict[int, tuple[float, float]] = {}
        column = 0
        for layer in layers:
            if column:  # roots keep id order; later layers follow their dependencies
                layer.sort(key=lambda t: _barycenter(deps[t], self.pos))
            rows = min(len(layer), MAX_ROWS)
            top = _MARGIN + (tallest - rows) * pitch / 2
            for k, task_id in enumerate(layer):
                x = _MARGIN + (column + k // MAX_ROWS) * (self.node_w + _H_GAP)
                self.pos[task_id] = (x, top + (k % MAX_ROWS) * pitch)
            column += -(-len(layer) // MAX_ROWS)

        self.width = 2 * _MARGIN + max(column * (self.node_w + _H_GAP) - _H_GAP, 0)
        self.height = 2 * _MARGIN + max(tallest * pitch - _V_GAP, 0)


def _barycenter(deps: list[int], pos: dict[int, tuple[float, float]]) -> float:
    if not deps:
        return 0.0
    return sum(pos[d][1] for d in deps) / len(deps)


def _short(label: str) -> str:
    return label if len(label) <= MAX_LABEL else label[: MAX_LABEL - 1] + "\u2026"


def _num(value: float) -> str:
    return f"{value:.1f}".removesuffix(".0")


def _svg(layout: _Layout) -> str:
    w, h = _num(layout.width), _num(layout.height)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" class="shoal-graph">',
        f"<title>shoal graph: {len(layout.ids)} tasks</title>",
        f"<style>{_STYLE}</style>",
        '<defs><marker id="shoal-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto">'
        '<path d="M0,0L10,5L0,10z" fill="#7d8a99"/></marker></defs>',
        '<g class="edges">',
    ]
    half, node_w = _NODE_H / 2, layout.node_w
    for src, dst in layout.edges:
        (x1, y1), (x2, y2) = layout.pos[src], layout.pos[dst]
        x1, y1, y2 = x1 + node_w, y1 + half, y2 + half
        bend = max((x2 - x1) / 2, 12.0)
        parts.append(
            f'<path class="edge" data-from="{src}" data-to="{dst}" '
            f'd="M{_num(x1)},{_num(y1)}C{_num(x1 + bend)},{_num(y1)} '
            f'{_num(x2 - bend)},{_num(y2)} {_num(x2)},{_num(y2)}" '
            'marker-end="url(#shoal-arrow)"/>'
        )
    parts.append('</g><g class="nodes">')
    for task_id in layout.ids:
        x, y = layout.pos[task_id]
        label = layout.labels[task_id]
        is_output = task_id in layout.outputs
        tip = label
        worker = layout.workers[task_id]
        if worker is not None:
            tip += f" (worker {worker})"
        if is_output:
            tip += " [output]"
        cls = "node output" if is_output else "node"
        parts.append(
            f'<g class="{cls}" id="task-{task_id}" data-id="{task_id}">'
            f"<title>{html.escape(tip)}</title>"
            f'<rect x="{_num(x)}" y="{_num(y)}" width="{node_w}" height="{_NODE_H}" '
            'rx="6" ry="6"/>'
            f'<text x="{_num(x + node_w / 2)}" y="{_num(y + half)}" text-anchor="middle" '
            f'dominant-baseline="central">{html.escape(_short(label))}</text></g>'
        )
    parts.append("</g></svg>")
    return "\n".join(parts) + "\n"


def _html(svg: str, count: int) -> str:
    title = f"shoal graph ({count} task{'' if count == 1 else 's'})"
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n"
        "<style>body{margin:1em;font-family:system-ui,sans-serif}"
        ".graph{overflow:auto}</style>\n"
        f"</head>\n<body>\n<h1>{html.escape(title)}</h1>\n"
        f'<div class="graph">\n{svg}</div>\n</body>\n</html>\n'
    )


def _dot_quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _dot(layout: _Layout) -> str:
    lines = [
        "digraph shoal {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#4a6fa5", '
        'fontname="monospace", fontsize=12];',
        '  edge [color="#7d8a99"];',
    ]
    for task_id in layout.ids:
        attrs = f"label={_dot_quote(_short(layout.labels[task_id]))}"
        if task_id in layout.outputs:
            attrs += ', fillcolor="#fff4d6", color="#d08700", penwidth=2.5'
        lines.append(f"  t{task_id} [{attrs}];")
    lines.extend(f"  t{src} -> t{dst};" for src, dst in layout.edges)
    lines.append("}")
    return "\n".join(lines) + "\n"


def _resolve_format(path: str | os.PathLike[str] | None, format: object) -> Format:
    if format is not None:
        wanted = format.lower() if isinstance(format, str) else format
        for known in FORMATS:
            if wanted == known:
                return known
        raise ConfigError(
            f"unknown visualize format {format!r}; valid formats are {', '.join(FORMATS)}"
        )
    if path is None:
        return "svg"
    suffix = Path(path).suffix.lower().removeprefix(".")
    if not suffix:
        return "svg"
    for known in FORMATS:
        if suffix == known:
            return known
    raise ConfigError(
        f"cannot tell the visualize format from the file name {os.fspath(path)!r}; "
        f"use a .svg, .png or .html suffix or pass format= (valid formats are "
        f"{', '.join(FORMATS)})"
    )


def _nodes(node_or_nodes: Node[Any] | Iterable[Node[Any]]) -> list[Node[Any]]:
    if isinstance(node_or_nodes, Node):
        return [node_or_nodes]
    if isinstance(node_or_nodes, str | bytes) or not isinstance(node_or_nodes, Iterable):
        raise UsageError(
            "visualize expects a Node or a list of Nodes (the result of calling a @shoal.task "
            f"function), got {type(node_or_nodes).__name__}"
        )
    return list(node_or_nodes)


def visualize(
    node_or_nodes: Node[Any] | Iterable[Node[Any]],
    path: str | os.PathLike[str] | None = None,
    format: Format | None = None,
) -> str:
    """Draws the graph that ends in ``node_or_nodes``; requested nodes are highlighted.

    ``format`` is ``"svg"``, ``"html"`` (a standalone page embedding the SVG) or ``"png"``
    (needs Graphviz ``dot``); by default it comes from the suffix of ``path``, else ``"svg"``.
    The drawing is written to ``path`` when one is given. Returns the SVG text, the HTML text,
    or for PNG the DOT text that was handed to ``dot``.

    Raises :class:`~shoal.errors.ConfigError` for an unknown format, or for PNG when ``dot`` is
    not installed or no ``path`` was given.
    """
    fmt = _resolve_format(path, format)
    dot_exe: str | None = None
    if fmt == "png":
        dot_exe = shutil.which("dot")
        if dot_exe is None:
            raise ConfigError(
                "PNG output needs the Graphviz 'dot' program, which is not on PATH; install "
                "Graphviz, or write a .svg or .html file instead (no extra tools needed)"
            )
        if path is None:
            raise ConfigError("PNG output needs a path to write to, e.g. visualize(path='g.png')")

    layout = _Layout(_nodes(node_or_nodes))

    if fmt == "png":
        assert dot_exe is not None and path is not None
        text = _dot(layout)
        done = subprocess.run(
            [dot_exe, "-Tpng", "-o", os.fspath(path)],
            input=text.encode(),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()
            raise ShoalError(f"Graphviz dot failed (exit {done.returncode}): {detail}")
        return text

    text = _svg(layout)
    if fmt == "html":
        text = _html(text, len(layout.ids))
    if path is not None:
        Path(path).write_text(text, encoding="utf-8")
    return text
