"""Type stubs of the private native module ``shoal._core`` (checked against the build)."""

from collections.abc import Callable, Iterable
from typing import Any, final

__all__ = [
    "FORMAT_VERSION",
    "Downstream",
    "Frozen",
    "Graph",
    "MapSpec",
    "Optimization",
    "ShapeKind",
    "Size",
    "TaskOptions",
    "TaskPlan",
    "WorkerPlan",
    "decode_constant",
    "derive_mac_key",
    "freeze",
    "hash16",
    "mac",
]

FORMAT_VERSION: int

@final
class TaskOptions:
    """A task's options (``@shoal.task(...)`` / ``.options(...)``); None means the default."""

    @property
    def retries(self) -> int: ...
    @property
    def memory_mb(self) -> int | None: ...
    @property
    def timeout_s(self) -> float | None: ...
    @property
    def name(self) -> str | None: ...

@final
class ShapeKind:
    """One kind of task in a graph's shape: a function and the functions of its inputs."""

    @property
    def fn_hash(self) -> bytes:
        """The task's function, by content hash."""
    @property
    def input_fns(self) -> list[bytes | None]:
        """Its inputs' functions, sorted (None: an input the graph does not hold)."""

@final
class Downstream:
    """A downstream edge as a completion counts it."""

    @property
    def task(self) -> int:
        """The downstream task (for an edge into a map: its chain's root)."""
    @property
    def ndeps(self) -> int:
        """How many completions it waits for."""
    @property
    def worker(self) -> int | None:
        """The worker it is pinned to (None = flexible)."""
    @property
    def held(self) -> bool:
        """Whether this graph holds its full spec (it may run here)."""

@final
class MapSpec:
    """A map task (``shoal.map``) as the graph knows it."""

    @property
    def id(self) -> int: ...
    @property
    def ord(self) -> int:
        """Dense index among the run's maps; element ids derive from it."""
    @property
    def root(self) -> int:
        """The first map of its chain (itself for a root)."""
    @property
    def group_deps(self) -> int:
        """Static inputs of the whole chain: completions its root waits for."""

@final
class Size:
    """Resources a task needs or a worker has; None leaves the platform's default."""

    def __new__(cls, memory_mb: int | None = None, cpu: float | None = None) -> Size: ...
    @property
    def memory_mb(self) -> int | None: ...
    @property
    def cpu(self) -> float | None:
        """Share of one CPU (1.0 = one core)."""

@final
class Optimization:
    """An optimization attached to a task: a kind and typed parameters (bool, int, float, str
    or a list of task ids). The core stores it without interpreting it."""

    def __new__(
        cls, kind: str, params: dict[str, bool | int | float | str | list[int]] | None = None
    ) -> Optimization: ...
    @property
    def kind(self) -> str: ...
    @property
    def params(self) -> dict[str, bool | int | float | str | list[int]]:
        """A new dict of the parameters, in the order given."""

@final
class TaskPlan:
    """A planner's decision for one task."""

    def __new__(
        cls,
        worker: int | None = None,
        size: Size | None = None,
        optimizations: list[Optimization] = ...,
    ) -> TaskPlan: ...
    @property
    def worker(self) -> int | None:
        """The worker it is pinned to (None = flexible)."""
    @property
    def size(self) -> Size | None: ...
    @property
    def optimizations(self) -> list[Optimization]: ...

@final
class WorkerPlan:
    """The planned size of one worker."""

    def __new__(cls, worker: int, size: Size) -> WorkerPlan: ...
    @property
    def worker(self) -> int: ...
    @property
    def size(self) -> Size: ...

@final
class Graph:
    """A frozen graph or a subDAG cut for one worker."""

    @staticmethod
    def decode(data: bytes) -> Graph: ...
    def encode(self) -> bytes: ...
    def __len__(self) -> int: ...
    def __contains__(self, key: int, /) -> bool: ...
    @property
    def outputs(self) -> list[int]: ...
    def task_ids(self) -> list[int]: ...
    def stub_ids(self) -> list[int]: ...
    def roots(self) -> list[int]: ...
    def topo_order(self) -> list[int]: ...
    def levels(self) -> list[int]: ...
    def closure(self, starts: list[int]) -> list[int]: ...
    def subgraph(self, ids: list[int]) -> Graph: ...
    def subdag_for(self, worker: int | None, starts: list[int]) -> Graph: ...
    def with_plan(self, tasks: dict[int, TaskPlan], workers: list[WorkerPlan] = ...) -> Graph:
        """A copy whose plan table is exactly this plan (tasks not named: flexible, unplanned)."""
    def plan_of(self, id: int) -> TaskPlan:
        """Task ``id``'s planned worker, size and optimizations."""
    def optimized(self) -> dict[int, list[Optimization]]:
        """``{task: [optimizations]}`` for every task the plan gives some."""
    def worker_size(self, worker: int) -> Size | None:
        """The planned size of ``worker``, if the plan gives one."""
    def planned_workers(self) -> list[WorkerPlan]: ...
    def partition(self) -> dict[int | None, list[int]]:
        """``{worker or None: [task ids]}``: every task exactly once."""
    def name(self, id: int) -> str: ...
    def deps(self, id: int) -> list[int]: ...
    def worker(self, id: int) -> int | None: ...
    def downstream(self, id: int) -> list[Downstream]:
        """The downstream tasks counted when ``id`` completes."""
    def consumers(self, id: int) -> list[int]: ...
    @property
    def has_maps(self) -> bool: ...
    def maps(self) -> list[MapSpec]:
        """The map tasks this graph knows."""
    def tasks_of(self, worker: int) -> list[int]: ...
    def fn_name(self, id: int) -> str:
        """Qualified name (``module:qualname``) of task ``id``'s function."""
    def fn_hash(self, id: int) -> bytes: ...
    def options(self, id: int) -> TaskOptions: ...
    def fn_hashes(self) -> list[bytes]: ...
    def shape(self) -> list[ShapeKind]:
        """The graph's shape, independent of its size: each distinct pair of a task's function
        and its inputs' functions, sorted."""
    def const_hashes(self, id: int | None = None) -> list[bytes]: ...
    def fill(
        self,
        id: int,
        values: list[Any],
        loads: Callable[[bytes], Any],
        consts: dict[bytes, Any] | None = None,
    ) -> tuple[tuple[Any, ...], dict[str, Any]]: ...

@final
class Frozen:
    """What freezing lazy nodes produces."""

    @property
    def graph(self) -> Graph:
        """The whole run's graph."""
    @property
    def outputs(self) -> list[int]:
        """Task id of each distinct requested node, in the order given."""
    @property
    def functions(self) -> dict[bytes, bytes]:
        """``{fn_hash: cloudpickled blob}``."""
    @property
    def constants(self) -> dict[bytes, bytes]:
        """``{const_hash: encoded constant}``."""
    @property
    def live_functions(self) -> dict[bytes, Callable[..., Any]]:
        """``{fn_hash: the live function object}``."""

def freeze(
    outputs: Iterable[Any],
    node_type: type,
    dumps: Callable[[Any], bytes],
    const_threshold: int,
) -> Frozen:
    """Freezes lazy nodes into a graph, its function table and its large constants."""

def decode_constant(blob: bytes, loads: Callable[[bytes], Any]) -> Any: ...
def hash16(data: bytes) -> bytes: ...
def derive_mac_key(secret: bytes) -> bytes:
    """The 32-byte MAC key made from a signing secret (keyed blake3 key derivation)."""

def mac(key: bytes, place: bytes, *payload: bytes, start: int = 0) -> bytes:
    """The MAC of the concatenation of ``payload``, the first ``start`` bytes of the first
    part left out, for ``place`` under ``key`` (32 bytes); parts are read where they lie and
    the GIL is released."""
