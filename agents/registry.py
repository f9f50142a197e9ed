"""The model registry as every worker sees it: all specs and reference profiles.

Every worker needs the spec of every model version whose events it may get,
and partitions move between workers, so each worker reads the whole
compacted registry topic itself, outside the consumer group, from the
beginning and then as it grows. A separate agent in the group reads the same
topic once per group to dead-letter invalid registrations.

Specs and events travel on different topics, so a prediction can reach a
worker before the spec registered just ahead of it. Before calling a model
unknown, the agents ask
:meth:`~driftline.agents.registry_follower.RegistryFollower.sync` to read
everything published to the registry up to the event's Kafka timestamp.

This module is the registry itself, pure: what a registry message means and
what the registry holds. Reading the topics (aiokafka) is
:mod:`driftline.agents.registry_follower`'s job.
"""

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from driftline.schemas import DeadLetterReason, ModelSpec, ReferenceProfile
from driftline.streams.codecs import Rejection, decode
from driftline.streams.settings import REFERENCE_MAX_BYTES, Settings

log = logging.getLogger(__name__)

ModelKey = tuple[str, str]
"""A model id and version."""


@dataclass(frozen=True, slots=True)
class Registration:
    """A model version's spec, registered or replaced."""

    spec: ModelSpec

    @property
    def model(self) -> ModelKey:
        """The model id and version registered."""
        return (self.spec.model_id, self.spec.model_version)


@dataclass(frozen=True, slots=True)
class Unregistration:
    """A tombstone: the model version is no longer registered."""

    model: ModelKey


@dataclass(frozen=True, slots=True)
class ReferenceRegistration:
    """A model version's reference profile, registered or replaced."""

    profile: ReferenceProfile

    @property
    def model(self) -> ModelKey:
        """The model id and version the profile belongs to."""
        return (self.profile.model_id, self.profile.model_version)


@dataclass(frozen=True, slots=True)
class ReferenceRemoval:
    """A tombstone on the references topic: the version goes back to a warm-up reference."""

    model: ModelKey


RegistryMessage = Registration | Unregistration | ReferenceRegistration | ReferenceRemoval


def read_registry_message(
    key: bytes | None, value: bytes | None, *, max_bytes: int, references: bool = False
) -> RegistryMessage | Rejection:
    """What one message on the registry (or, with ``references``, references) topic says.

    Never raises. The key must be the model version's
    :func:`~driftline.schemas.registry_key` (as parsed JSON: spacing and
    escapes may differ): compaction keeps the last message per key, so a
    message under another key would survive its own removal.

    >>> read_registry_message(b'["churn","3"]', None, max_bytes=1024)
    Unregistration(model=('churn', '3'))
    >>> read_registry_message(b'churn', None, max_bytes=1024).reason
    <DeadLetterReason.INVALID_SPEC: 'invalid_spec'>
    """
    reason = DeadLetterReason.INVALID_REFERENCE if references else DeadLetterReason.INVALID_SPEC
    what = "reference profile" if references else "spec"
    model = _model_of_key(key)
    if value is None:
        if model is None:
            return Rejection(
                reason,
                f"a tombstone on the {what} topic must carry the key of the model version it "
                'removes, a JSON array such as ["churn","3"]',
            )
        return ReferenceRemoval(model) if references else Unregistration(model)
    decoded: ModelSpec | ReferenceProfile | Rejection = (
        decode(ReferenceProfile, value, max_bytes=max_bytes)
        if references
        else decode(ModelSpec, value, max_bytes=max_bytes)
    )
    if isinstance(decoded, Rejection):
        return decoded
    if model != (decoded.model_id, decoded.model_version):
        shown = "no key" if key is None else f"key {key.decode('utf-8', errors='replace')!r}"
        expected = decoded.registry_key().decode()
        return Rejection(
            reason,
            f"the {what} of model {decoded.model_id} version {decoded.model_version} was "
            f"published with {shown}; publish it under {expected} so that compaction keeps "
            "the latest one of each version",
        )
    if isinstance(decoded, ReferenceProfile):
        return ReferenceRegistration(decoded)
    return Registration(decoded)


def _model_of_key(key: bytes | None) -> ModelKey | None:
    if key is None:
        return None
    try:
        parsed = json.loads(key)
    except (ValueError, RecursionError):
        return None
    if isinstance(parsed, list) and len(parsed) == 2 and all(isinstance(p, str) for p in parsed):
        return (parsed[0], parsed[1])
    return None


def registry_max_bytes(settings: Settings, references: bool) -> int:
    """The size limit of a message on the registry (or references) topic."""
    return (
        max(settings.max_message_bytes, REFERENCE_MAX_BYTES)
        if references
        else (settings.max_message_bytes)
    )


class ModelRegistry:
    """The specs and reference profiles of the registered model versions.

    ``on_change`` is called with the model id and version whenever a spec or
    reference profile is registered, replaced or removed, so state kept for
    the old one can be dropped.
    """

    def __init__(self, on_change: Callable[[ModelKey], None] | None = None) -> None:
        self.on_change = on_change
        self._specs: dict[ModelKey, ModelSpec] = {}
        self._references: dict[ModelKey, ReferenceProfile] = {}
        self._versions: dict[str, set[str]] = {}

    def apply(self, message: RegistryMessage) -> None:
        """Take one registration, removal or reference profile into account."""
        model = message.model
        if isinstance(message, Registration):
            if self._specs.get(model) == message.spec:
                return
            self._specs[model] = message.spec
            self._versions.setdefault(model[0], set()).add(model[1])
            log.info("model %s version %s registered", *model)
        elif isinstance(message, Unregistration):
            if self._specs.pop(model, None) is None:
                return
            versions = self._versions[model[0]]
            versions.discard(model[1])
            if not versions:
                del self._versions[model[0]]
            log.info("model %s version %s unregistered", *model)
        elif isinstance(message, ReferenceRegistration):
            if self._references.get(model) == message.profile:
                return
            self._references[model] = message.profile
            log.info("model %s version %s: reference profile registered", *model)
        else:
            if self._references.pop(model, None) is None:
                return
            log.info("model %s version %s: reference profile removed", *model)
        if self.on_change is not None:
            self.on_change(model)

    def reference(self, model_id: str, model_version: str) -> ReferenceProfile | None:
        """The registered reference profile of one model version, if any."""
        return self._references.get((model_id, model_version))

    def spec(self, model_id: str, model_version: str) -> ModelSpec | None:
        """The spec of one model version, or None when it is not registered."""
        return self._specs.get((model_id, model_version))

    def versions(self, model_id: str) -> list[str]:
        """The registered versions of a model, in no particular order."""
        return list(self._versions.get(model_id, ()))

    def has_model(self, model_id: str) -> bool:
        """Whether any version of this model is registered."""
        return model_id in self._versions

    def __len__(self) -> int:
        return len(self._specs)
