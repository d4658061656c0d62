"""Backends: how shoal invokes a worker (see :class:`.base.Backend`)."""

from .base import Backend, Capabilities, Resources
from .inprocess import InProcess
from .local import LocalProcesses

__all__ = ["Backend", "Capabilities", "InProcess", "LocalProcesses", "Resources"]
