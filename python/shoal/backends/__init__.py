"""Backends: how shoal invokes a worker (see :class:`.base.Backend`)."""

from .base import Backend, Capabilities, Resources
from .inprocess import InProcess

__all__ = ["Backend", "Capabilities", "InProcess", "Resources"]
