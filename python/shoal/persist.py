"""``Session.persist``: a value computed once and kept on the server for later graphs.

``session.persist(node)`` runs the graph ending in ``node``, stores its value under a key of its
own (``shoal:persisted:<id>``, sealed for that place, with a TTL: a day unless said otherwise)
and returns a :class:`Persisted` node. Passing that node to later graphs (of this session, or
of any session on the same server and secret) gives their tasks the value without running the
graph again: the node is a task of :func:`load`, whose worker reads the key in the same step
as it starts the task (the worker's shell sees :data:`READS_KEPT_VALUE` on the function) and
decodes it there; the value does not pass through the client. ``release()`` deletes it; a
graph using a released or expired value fails with a ``KeyError`` naming it.

The value travels once from the run's worker to the client and back to the server (the run's
own keys are deleted when it ends); a value too big for that is better written by a task to a
store of its own.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .errors import ShoalError
from .serialize import dumps_value, loads_value
from .signing import context
from .task import Node, TaskOptions

if TYPE_CHECKING:
    from .session import Session

R = TypeVar("R")

#: A task function marked so is given the kept value's bytes by its worker (see :func:`load`).
READS_KEPT_VALUE = "_shoal_reads_kept_value"
#: How long a persisted value is kept unless ``ttl_s`` says otherwise.
DEFAULT_TTL_S = 24 * 3600.0


def kept_place(value_id: str) -> str:
    """Where a persisted value belongs (its seal names it)."""
    return context("persisted", "value", value_id)


def load(value_id: str, name: str, blob: bytes | None = None) -> Any:
    """The task that stands for a persisted value: its worker passes the stored bytes."""
    if blob is None:
        raise KeyError(
            f"the persisted value of {name!r} ({value_id}) is gone: it was released, or its "
            "TTL ran out (persist it again)"
        )
    return loads_value(blob, kept_place(value_id))


setattr(load, READS_KEPT_VALUE, True)


class Persisted(Node[R], Generic[R]):
    """A value kept on the server by :meth:`Session.persist`; pass it to tasks like any node."""

    __slots__ = ("_session", "id", "ttl_s")

    def __init__(self, session: Session, value_id: str, name: str, ttl_s: float) -> None:
        super().__init__(load, f"persisted:{name}", TaskOptions(), (value_id, name), {})
        self._session = session
        #: The key's id on the server.
        self.id = value_id
        self.ttl_s = ttl_s

    def release(self) -> bool:
        """Deletes the value from the server now; False if it was gone already (released, or
        its TTL ran out). Graphs that use it afterwards fail."""
        s = self._session
        return s._run(s.storage.release_value(self.id))

    def __repr__(self) -> str:
        return f"<shoal.Persisted {self._name} id={self.id}>"


def persist(session: Session, node: Node[R], ttl_s: float, timeout: float | None) -> Persisted[R]:
    if not isinstance(node, Node):
        raise ShoalError(f"persist() takes a node, got {type(node).__name__}")
    (value,) = session.compute(node, timeout=timeout)
    value_id = uuid.uuid4().hex
    blob = dumps_value(value, kept_place(value_id))
    session._run(session.storage.keep_value(value_id, blob, ttl_s))
    return Persisted(session, value_id, node.name, ttl_s)
