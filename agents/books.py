"""Each model version's alert lifecycle and retraining state, kept where a restart finds it.

The drift and performance monitors start afresh after a restart or a
rebalance, but the alerts they raised must not: an alert open before the
restart stays open under the same id (a monitor that finds the same change
again updates it rather than opening a second one), cooldowns still hold,
and a change that already triggered retraining does not trigger again.
:class:`AlertBooks` keeps that state in a store (a faust table in the
worker, whose changelog survives the worker; a dict in tests), written when
an event changed it and every ``SAVE_EVERY`` events otherwise (so the
version's event clock is off by at most that much after a restart).
"""

import hashlib
from collections.abc import MutableMapping

import orjson

from driftline.agents.lifecycle import AlertLifecycle
from driftline.agents.registry import ModelKey
from driftline.agents.retraining import RetrainDecider
from driftline.schemas import ModelSpec, registry_key

SAVE_EVERY = 1_000
"""Events of a version between two saves of its state when nothing else changed it."""


class AlertBooks:
    """The alert lifecycle and retraining decider of every model version, saved in a store."""

    def __init__(self, store: MutableMapping[str, bytes] | None = None) -> None:
        self.store: MutableMapping[str, bytes] = {} if store is None else store
        self._books: dict[ModelKey, tuple[AlertLifecycle, RetrainDecider]] = {}

    def lifecycles(self) -> list[AlertLifecycle]:
        """The alert lifecycle of each model version in memory (seen since the start)."""
        return [life for life, _ in self._books.values()]

    def book_for(self, spec: ModelSpec) -> tuple[AlertLifecycle, RetrainDecider]:
        """The version's lifecycle and decider: in memory, else read back, else new.

        Saved state of another spec of the same version (a re-registration)
        is not read back: a new spec starts with no alerts and no policy state.
        """
        key = (spec.model_id, spec.model_version)
        book = self._books.get(key)
        if book is not None and book[0].spec is spec:
            return book
        book = self._read(spec) or (AlertLifecycle(spec), RetrainDecider(spec))
        self._books[key] = book
        return book

    def save(self, spec: ModelSpec, *, changed: bool, since: int | None = None) -> None:
        """Write the version's state if events changed it, or every ``SAVE_EVERY`` events.

        ``since`` is the version's clock before the events (a batch) this
        save is for; without it, they were one event.
        """
        life, decider = self.book_for(spec)
        before = life.clock - 1 if since is None else since
        if not changed and before // SAVE_EVERY == life.clock // SAVE_EVERY:
            return
        self.store[_key(spec)] = orjson.dumps(
            {
                "spec": _fingerprint(spec),
                "lifecycle": life.to_state(),
                "retraining": decider.to_state(),
            }
        )

    def forget(self, model: ModelKey) -> None:
        """Drop the in-memory state of a version whose spec changed or went away."""
        self._books.pop(model, None)

    def _read(self, spec: ModelSpec) -> tuple[AlertLifecycle, RetrainDecider] | None:
        raw = self.store.get(_key(spec))
        if raw is None:
            return None
        state = orjson.loads(raw)
        if state.get("spec") != _fingerprint(spec):
            return None
        return (
            AlertLifecycle.from_state(spec, state["lifecycle"]),
            RetrainDecider.from_state(spec, state["retraining"]),
        )


def _key(spec: ModelSpec) -> str:
    return registry_key(spec.model_id, spec.model_version).decode("utf-8")


def _fingerprint(spec: ModelSpec) -> str:
    """Which spec the state belongs to."""
    return hashlib.sha256(spec.model_dump_json().encode("utf-8")).hexdigest()[:32]
