"""Counts of what became of the messages consumed from one topic."""

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class TopicCounters:
    """What became of the messages consumed from one topic.

    ``waiting`` counts labels held in the label join until their prediction
    arrives; each later becomes processed or dead-lettered.
    """

    consumed: int = 0
    processed: int = 0
    dead_lettered: int = 0
    duplicates: int = 0
    waiting: int = 0
    dead_letter_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def accounted(self) -> int:
        """Messages with an outcome or waiting for one; equals ``consumed`` between messages."""
        return self.processed + self.dead_lettered + self.duplicates + self.waiting
