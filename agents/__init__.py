"""faust agents: read a stream, call the statistics core, send what it found.

Importing the package loads nothing of faust or the Kafka clients: the
intake and the registry are pure, and the faust wiring (``register_agents``,
``Monitoring``, the registry follower, the worker) is imported when first
asked for.
"""

from typing import TYPE_CHECKING

from driftline.agents.intake import InputMessage, InputTopic, Intake, IntakeCounters
from driftline.agents.registry import ModelRegistry
from driftline.streams.lazy import lazy_names

if TYPE_CHECKING:
    from driftline.agents.registry_follower import RegistryFollower
    from driftline.agents.wiring import Monitoring, register_agents
    from driftline.agents.worker import BoundedShutdownWorker, build_worker_app, run_worker

LAZY = {
    "RegistryFollower": "driftline.agents.registry_follower",
    "Monitoring": "driftline.agents.wiring",
    "register_agents": "driftline.agents.wiring",
    "BoundedShutdownWorker": "driftline.agents.worker",
    "build_worker_app": "driftline.agents.worker",
    "run_worker": "driftline.agents.worker",
}
"""Names imported from their module when first asked for."""


__getattr__ = lazy_names(__name__, LAZY)

__all__ = [
    "BoundedShutdownWorker",
    "InputMessage",
    "InputTopic",
    "Intake",
    "IntakeCounters",
    "ModelRegistry",
    "Monitoring",
    "RegistryFollower",
    "build_worker_app",
    "register_agents",
    "run_worker",
]
