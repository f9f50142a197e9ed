"""faust agents: read a stream, call the statistics core, send what it found."""

from driftline.agents.intake import InputMessage, InputTopic, Intake, IntakeCounters
from driftline.agents.registry import ModelRegistry, RegistryFollower
from driftline.agents.wiring import Monitoring, register_agents
from driftline.agents.worker import BoundedShutdownWorker, build_worker_app, run_worker

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
