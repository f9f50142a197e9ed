"""Each model version's alert lifecycle and retraining decider, in memory and read back.

An alert open before a restart stays open under the same id (a monitor that
finds the same change again updates it rather than opening a second one),
cooldowns still hold, and a change that already triggered retraining does
not trigger again: the intake saves each version's books with its monitor,
at every checkpoint (:mod:`driftline.agents.version_state`), and gives them back
to :class:`AlertBooks` (:meth:`AlertBooks.restore`) when it reads the
version back.
"""

from driftline.agents.lifecycle import AlertLifecycle
from driftline.agents.registry import ModelKey
from driftline.agents.retraining import RetrainDecider
from driftline.monitors.state import State
from driftline.schemas import ModelSpec


class AlertBooks:
    """The alert lifecycle and retraining decider of every model version."""

    def __init__(self) -> None:
        self._books: dict[ModelKey, tuple[AlertLifecycle, RetrainDecider]] = {}

    def lifecycles(self) -> list[AlertLifecycle]:
        """The alert lifecycle of each model version in memory (seen since the start)."""
        return [life for life, _ in self._books.values()]

    def book_for(self, spec: ModelSpec) -> tuple[AlertLifecycle, RetrainDecider]:
        """The version's lifecycle and decider: in memory (restored or not), else new.

        Books of another spec of the same version (a re-registration) are
        not taken: a new spec starts with no alerts and no policy state.
        """
        key = (spec.model_id, spec.model_version)
        book = self._books.get(key)
        if book is not None and book[0].spec is spec:
            return book
        book = self._books[key] = (AlertLifecycle(spec), RetrainDecider(spec))
        return book

    def holds(self, spec: ModelSpec) -> bool:
        """Whether the version's books are in memory (for this very spec)."""
        book = self._books.get((spec.model_id, spec.model_version))
        return book is not None and book[0].spec is spec

    def restore(self, spec: ModelSpec, lifecycle: State, retraining: State) -> AlertLifecycle:
        """Take a version's saved books, read with its monitor; its lifecycle."""
        life = AlertLifecycle.from_state(spec, lifecycle)
        self._books[(spec.model_id, spec.model_version)] = (
            life,
            RetrainDecider.from_state(spec, retraining),
        )
        return life

    def forget(self, model: ModelKey) -> None:
        """Drop the in-memory state of a version whose spec changed or went away."""
        self._books.pop(model, None)
