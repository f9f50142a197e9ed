"""faust agents: read a stream, call the statistics core, send what it found."""

from driftline.agents.predictions import (
    PredictionCounters,
    PredictionHandler,
    register_prediction_agent,
)
from driftline.agents.worker import BoundedShutdownWorker, build_worker_app, run_worker

__all__ = [
    "BoundedShutdownWorker",
    "PredictionCounters",
    "PredictionHandler",
    "build_worker_app",
    "register_prediction_agent",
    "run_worker",
]
