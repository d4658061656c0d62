"""Optimizations: typed decisions attached to tasks through the plan, acting in the worker.

An optimization is a plan value (:class:`shoal.planning.Optimization`: a kind and its
parameters) on one task's :class:`~shoal.planning.TaskPlan`; it travels in the graph's plan
table to every worker that holds the task, and acts there through the worker's policy
(:mod:`.policy`). When one acts, the tasks it acted on say so: their TASK_COMPLETED events
carry its kind in ``optimizations``, and so do their metric records.

Kinds (:mod:`.kinds` checks their parameters when a plan is applied; a plan naming a kind
nobody registered is refused, so a misspelt one does not silently do nothing):

- :func:`Cluster` (``cluster``): when the task completes, its worker keeps the flexible tasks
  the completion made ready, instead of handing them to new workers: their inputs are local,
  and no invocation or start is paid for them.
"""

from .kinds import KINDS, Cluster, check, register

__all__ = ["KINDS", "Cluster", "check", "register"]
