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
- :func:`Spread` (``spread``): the opposite; the ready tasks go to new workers
  ``per_worker`` at a time, whatever the platform's parallelism (on a root: at the run's
  start). ``Spread(1)`` everywhere is WUKONG's policy.

One task carries at most one of the kinds that decide placement (``cluster``, ``spread``):
two would override each other, so such a plan is refused.
"""

from .kinds import KINDS, Cluster, Spread, check, register

__all__ = ["KINDS", "Cluster", "Spread", "check", "register"]
