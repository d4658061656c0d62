"""Planning: plans (which worker runs each task, how big each worker is, which optimizations
act). Planners, predictions and simulation build on :class:`Plan`."""

from .plan import Optimization, Plan, Size, TaskPlan

__all__ = ["Optimization", "Plan", "Size", "TaskPlan"]
