"""driftline: a Kafka-native, event-driven monitor for models in production.

The package is laid out as rooms on floors, every import pointing down:

- ``driftline.schemas``: everything on the wire (imports nothing of ours);
- ``driftline.monitors``: the statistics core, Kafka-free and clock-free;
- ``driftline.streams``: settings, the faust app, topics, codecs, the broker harness;
- ``driftline.agents``: faust agents that join the streams to the core;
- ``driftline`` itself: the command line, the client and the simulator.
"""

__version__ = "0.1.0"
