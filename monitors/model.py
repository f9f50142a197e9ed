"""One monitor per model version: data quality and drift of all its features.

Every event's features are checked against the model's spec (data quality);
the values that pass feed the drift tests. Drift is measured against a
reference profile: the one registered for the version, or else one built
from the version's first ``warmup_events`` events. The false-alarm budget
of the spec's drift policy is split evenly across the model's drift
subjects (each feature, the predictions, the features together), so a model
with more features raises no more false alarms in total.
"""

import json
import zlib
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np

from driftline.monitors.batch import BatchWatch
from driftline.monitors.feature_drift import CategoricalDrift, DriftAlarm, NumericDrift
from driftline.monitors.findings import (
    EVENT_MEMORY,
    MULTIVARIATE,
    PREDICTION,
    UNCERTAINTY,
    BatchFindings,
    Detector,
    DriftFinding,
    DriftResolution,
    ModelFindings,
    Moment,
    Subject,
    change_event_number,
    drift_finding,
    prediction_value,
)
from driftline.monitors.multivariate import MultivariateDrift
from driftline.monitors.packing import (
    pack_ints,
    unpack_ints,
)
from driftline.monitors.positions import Located
from driftline.monitors.quality import DataQualityMonitor, QualityFinding
from driftline.monitors.reference import (
    CategoricalReference,
    CompactProfile,
    ModelReference,
    NumericReference,
    build_reference_made,
)
from driftline.monitors.rings import EventMemory, RunRing
from driftline.monitors.sequential import MAX_RHO
from driftline.monitors.state import State, Stateful
from driftline.monitors.uncertainty import uncertainty_of
from driftline.monitors.warmup import Column, WarmupColumns
from driftline.schemas import (
    CategoricalCounts,
    FeatureEvent,
    KafkaPosition,
    ModelSpec,
    NumericSketch,
    PredictionEvent,
    QualityCheck,
    ReferenceProfile,
)

SMALL_BATCH = 4
"""Batches smaller than this go event by event: numpy's fixed costs would outweigh its speed."""

__all__ = [
    "MULTIVARIATE",
    "PREDICTION",
    "UNCERTAINTY",
    "DriftFinding",
    "DriftResolution",
    "ModelFindings",
    "ModelMonitor",
]


class ModelMonitor:
    """Checks every event of one model version against its spec and watches it for drift.

    Parameters
    ----------
    spec
        The model version's spec: features, kinds and drift policy.
    reference
        The version's registered reference profile; without one, the first
        ``spec.drift.warmup_events`` events become the reference.
    max_monitored_features
        At most this many features are watched for drift (in the spec's
        order); a spec with more gets data-quality checks for the rest.
    quality_alpha
        False-alarm probability of each data-quality check per window.

    After a subject alarms it stays latched until it has raised no alarm for
    ``spec.alerts.resolve_after_events`` of its observations and its tests'
    statistics are under ``spec.alerts.exit_fraction`` of their thresholds:
    alarms in between are repeats of the same change, not new ones, and the
    subject then resolves (hysteresis between the enter and exit thresholds).

    Examples
    --------
    >>> import random
    >>> from datetime import UTC, datetime
    >>> from driftline.schemas import FeatureSpec
    >>> spec = ModelSpec(
    ...     model_id="churn", model_version="3", task="regression",
    ...     features=[FeatureSpec(name="x", kind="numeric"), FeatureSpec(name="y", kind="numeric")],
    ... )
    >>> rng = random.Random(1)
    >>> monitor = ModelMonitor(spec)
    >>> drifts = []
    >>> for i in range(6000):
    ...     event = PredictionEvent(
    ...         model_id="churn", model_version="3", event_id=f"e{i}",
    ...         event_time=datetime(2026, 1, 1, tzinfo=UTC),
    ...         features={"x": rng.gauss(0 if i < 4000 else 1, 1), "y": rng.gauss(0, 1)},
    ...     )
    ...     drifts.extend(monitor.update(event).drifts)
    >>> [(d.subject, d.alarm.test, d.event_id) for d in drifts]
    [('x', 'location_cusum', 'e4035'), ('(multivariate)', 'multivariate_cusum', 'e4101')]
    """

    def __init__(
        self,
        spec: ModelSpec,
        *,
        reference: ReferenceProfile | None = None,
        max_monitored_features: int = 1_000,
        quality_alpha: float = 1e-4,
    ) -> None:
        self.spec = spec
        self.max_monitored_features = max_monitored_features
        self.quality_alpha = quality_alpha
        self._quality = DataQualityMonitor(spec, alpha=quality_alpha)
        self._watched = [f.name for f in spec.features if f.monitor][:max_monitored_features]
        self._events = 0
        self._recent_events = EventMemory(EVENT_MEMORY)
        self._warmup: WarmupColumns | None = None
        self._subjects: list[Subject] = []
        self._reference: CompactProfile | None = None
        self._spec_state: State | None = None
        """The spec as :meth:`to_state` writes it, made once (a spec never changes)."""
        if reference is None:
            self._warmup = WarmupColumns(spec, self._watched)
        else:
            self._start(reference)

    # Feeding events.

    def update(
        self, event: PredictionEvent | FeatureEvent, position: Located | None = None
    ) -> ModelFindings:
        """Feed one event of this model version (at ``position`` on Kafka); return what it revealed.

        Feature events carry inputs only; prediction events may carry both.
        """
        if (event.model_id, event.model_version) != (self.spec.model_id, self.spec.model_version):
            raise ValueError(
                f"event of {event.model_id}/{event.model_version} fed to the monitor of "
                f"{self.spec.model_id}/{self.spec.model_version}"
            )
        prediction = prediction_value(self.spec, event)
        unsure = uncertainty_of(self.spec, event)
        if event.features is None and prediction is None and unsure is None:
            return ModelFindings()
        self._events += 1
        self._recent_events.append(event.event_time, position)
        quality: list[QualityFinding] = []
        values: dict[str, object] = {}
        if event.features is not None:
            checked = self._quality.update(event.features)
            quality = checked.findings
            for name in self._watched:
                value = checked.values[name]
                values[name] = value.numeric if value.numeric is not None else value.category
        if prediction is not None:
            values[PREDICTION] = prediction
        if unsure is not None:
            values[UNCERTAINTY] = unsure
        if self._warmup is not None:
            # The reference builder checks raw values itself, as it does for training data.
            self._collect({**(event.features or {}), PREDICTION: prediction, UNCERTAINTY: unsure})
            return ModelFindings(quality=quality)
        drifts, repeats, resolved = self._watch(values, event)
        return ModelFindings(drifts=drifts, quality=quality, repeats=repeats, resolved=resolved)

    def update_many(
        self,
        events: Sequence[PredictionEvent | FeatureEvent],
        positions: Sequence[Located | None] | None = None,
    ) -> ModelFindings:
        """Feed a batch of events in order; return everything they revealed, in order.

        The same findings as :meth:`update` event by event, merged; see
        :meth:`update_batch` for them event by event.
        """
        drifts: list[DriftFinding] = []
        quality: list[QualityFinding] = []
        repeats: list[DriftFinding] = []
        resolved: list[DriftResolution] = []
        for _, found in sorted(self.update_batch(events, positions).findings.items()):
            drifts += found.drifts
            quality += found.quality
            repeats += found.repeats
            resolved += found.resolved
        return ModelFindings(drifts=drifts, quality=quality, repeats=repeats, resolved=resolved)

    def update_batch(
        self,
        events: Sequence[PredictionEvent | FeatureEvent],
        positions: Sequence[Located | None] | None = None,
    ) -> BatchFindings:
        """Feed a batch of events in order; what each revealed, by its index in the batch.

        Exactly the findings (and the state) of :meth:`update` event by event,
        whatever the batch's size: after the warm-up, data quality and the
        drift tests run on numpy columns (see
        :class:`~driftline.monitors.batch.BatchWatch`).
        """
        found = ModelMonitor.update_batches([(self, events, positions)])[0]
        if isinstance(found, Exception):
            raise found
        return found

    @staticmethod
    def update_batches(
        batches: Sequence[
            tuple[
                "ModelMonitor",
                Sequence[PredictionEvent | FeatureEvent],
                Sequence[Located | None] | None,
            ]
        ],
    ) -> list[BatchFindings | Exception]:
        """:meth:`update_batch` of several monitors, each on its own batch, in one go.

        Monitors past their warm-up with a batch of at least ``SMALL_BATCH``
        events run their numeric drift tests side by side
        (:meth:`BatchWatch.run_together`): with many models, a batch brings
        each few events, and their fixed costs are shared. Each monitor ends
        with exactly the findings and state of its own :meth:`update_batch`.
        A batch that failed gets its exception in place of its findings and
        the others go on (a failure in the shared step fails every batch in
        it). The monitors must be distinct.
        """
        if len({id(monitor) for monitor, _, _ in batches}) != len(batches):
            raise ValueError("each batch needs a monitor of its own")
        results: list[BatchFindings | Exception | None] = [None] * len(batches)
        watches: list[tuple[int, BatchWatch, dict[tuple[str, QualityCheck], bool]]] = []
        for number, (monitor, events, positions) in enumerate(batches):
            where = list(positions) if positions is not None else [None] * len(events)
            try:
                if len(where) != len(events):
                    raise ValueError(f"{len(events)} events but {len(where)} positions")
                if monitor._warmup is None and len(events) >= SMALL_BATCH:
                    before = monitor._quality.alarming_checks()
                    watches.append((number, BatchWatch(monitor, events, where), before))
                else:
                    results[number] = monitor._update_in_steps(events, where)
            except Exception as error:
                results[number] = error
        revealed = BatchWatch.run_together([watch for _, watch, _ in watches])
        for (number, watch, before), outcome in zip(watches, revealed, strict=True):
            if isinstance(outcome, Exception):
                results[number] = outcome
                continue
            results[number] = BatchFindings(outcome[1], before, watch.quality_changes())
        done = [result for result in results if result is not None]
        assert len(done) == len(batches)
        return done

    def _update_in_steps(
        self,
        events: Sequence[PredictionEvent | FeatureEvent],
        where: Sequence[Located | None],
    ) -> BatchFindings:
        """:meth:`update_batch` in steps: to the warm-up's end, then the rest, or one by one."""
        before = self._quality.alarming_checks()
        changes: dict[tuple[str, QualityCheck], list[tuple[int, bool]]] = {}
        found: dict[int, ModelFindings] = {}
        index = 0
        while index < len(events):
            if len(events) - index < SMALL_BATCH:
                self._one_by_one(events[index:], where[index:], index, found, changes)
                break
            watch = BatchWatch(self, events[index:], where[index:])
            taken, revealed = watch.collect() if self._warmup is not None else watch.run()
            for offset, one in revealed.items():
                found[index + offset] = one
            for key, marks in watch.quality_changes().items():
                changes.setdefault(key, []).extend((index + i, state) for i, state in marks)
            index += taken
        return BatchFindings(found, before, changes)

    def _one_by_one(
        self,
        events: Sequence[PredictionEvent | FeatureEvent],
        where: Sequence[Located | None],
        offset: int,
        found: dict[int, ModelFindings],
        changes: dict[tuple[str, QualityCheck], list[tuple[int, bool]]],
    ) -> None:
        """:meth:`update` each event, noting what :meth:`update_batch` reports of it."""
        now = self._quality.alarming_checks()
        for index, (event, position) in enumerate(zip(events, where, strict=True), offset):
            one = self.update(event, position)
            if one.drifts or one.quality or one.repeats or one.resolved:
                found[index] = one
            if one.quality or any(now.values()):
                after = self._quality.alarming_checks()
                for key, state in after.items():
                    if state != now[key]:
                        changes.setdefault(key, []).append((index, state))
                now = after

    def _collect(self, values: Mapping[str, object]) -> None:
        assert self._warmup is not None
        self._warmup.append(values)
        if self._events >= self.spec.drift.warmup_events:
            self._end_warmup()

    def _end_warmup(self) -> None:
        """Build the reference from the warm-up's events and start the detectors on it."""
        assert self._warmup is not None
        columns, self._warmup = self._warmup.columns(), None
        self._start(*self._warmup_reference(columns))

    def _warmup_reference(
        self, columns: Mapping[str, Column]
    ) -> tuple[ReferenceProfile, dict[str, NumericReference]]:
        """The reference profile of the warm-up's columns, and the numeric references made."""
        features = {n: c for n, c in columns.items() if n not in (PREDICTION, UNCERTAINTY)}
        source = f"warmup:{self._events} events"
        made: dict[str, NumericReference] = {}
        if features:
            profile, made = build_reference_made(
                self.spec, features, source=source, ordered=True, validate=False
            )
        else:  # a model without monitored features
            profile = ReferenceProfile(
                model_id=self.spec.model_id,
                model_version=self.spec.model_version,
                source=source,
                event_count=self._events,
                features={},
            )
        sketches: dict[str, NumericSketch | CategoricalCounts] = dict(profile.features)
        predictions = columns[PREDICTION]
        if isinstance(predictions, np.ndarray):  # a regressor's
            numbers = predictions[np.isfinite(predictions)]
            if numbers.size:
                made[PREDICTION] = NumericReference.from_values(numbers)
                sketches[PREDICTION] = made[PREDICTION].to_sketch()
        else:
            labels = [label for label in predictions if label is not None]
            if labels:
                sketches[PREDICTION] = CategoricalReference.from_values(labels).to_counts()
        unsure = np.asarray(columns[UNCERTAINTY], dtype=np.float64)
        unsure = unsure[np.isfinite(unsure)]
        if unsure.size:
            made[UNCERTAINTY] = NumericReference.from_values(unsure)
            sketches[UNCERTAINTY] = made[UNCERTAINTY].to_sketch()
        return profile.model_copy(update={"features": sketches}), made

    def _watch(
        self, values: Mapping[str, object], event: PredictionEvent | FeatureEvent
    ) -> tuple[list[DriftFinding], list[DriftFinding], list[DriftResolution]]:
        """New alarms, repeated alarms and resolutions of the drift subjects for one event."""
        scores: dict[str, float] = {}
        findings: list[DriftFinding] = []
        repeats: list[DriftFinding] = []
        resolved: list[DriftResolution] = []
        for subject in self._subjects:
            detector = subject.detector
            before = detector.observations
            if isinstance(detector, MultivariateDrift):
                alarmed = detector.update(scores)
            else:
                value = values.get(subject.name)
                if value is None:
                    continue
                if isinstance(detector, NumericDrift):
                    alarmed = isinstance(value, float) and detector.update(value)
                    if detector.observations > before and detector.last_score is not None:
                        scores[subject.name] = detector.last_score
                else:
                    alarmed = detector.update(str(value))
            if detector.observations > before:
                subject.observed_at.append(self._events)
            outcome = self._latch(subject, alarmed, event)
            if isinstance(outcome, DriftResolution):
                resolved.append(outcome)
            elif outcome is not None:
                (repeats if outcome[1] else findings).append(outcome[0])
        return findings, repeats, resolved

    def _latch(
        self, subject: Subject, alarmed: bool, event: Moment, observations: int = 1
    ) -> tuple[DriftFinding, bool] | DriftResolution | None:
        """An alarm (and whether it repeats one still latched), a resolution, or nothing, for
        ``observations`` of the subject ending with ``event``'s."""
        policy = self.spec.alerts
        if not alarmed:
            if not subject.latched:
                return None
            subject.quiet += observations
            if subject.quiet < policy.resolve_after_events:
                return None
            if subject.detector.pressure >= policy.exit_fraction:
                return None  # quiet long enough, but not yet back under the exit threshold
            subject.latched, subject.quiet = False, 0
            return DriftResolution(subject.name, event.event_id, event.event_time)
        repeat = subject.latched
        subject.latched, subject.quiet = True, 0
        alarm = subject.detector.last_alarm
        assert alarm is not None
        return drift_finding(subject, alarm, event, self._place(subject, alarm)), repeat

    def _place(
        self, subject: Subject, alarm: DriftAlarm
    ) -> tuple[datetime | None, KafkaPosition | None]:
        """The event time and Kafka position of the alarm's estimated change point."""
        event_number = change_event_number(subject, alarm)
        slot = event_number - (self._events - len(self._recent_events)) - 1
        if not 0 <= slot < len(self._recent_events):
            return None, None
        return self._recent_events[slot]

    # Building the detectors.

    def _start(
        self, reference: ReferenceProfile, made: Mapping[str, NumericReference] | None = None
    ) -> None:
        """Build one detector per drift subject the reference covers, splitting the budget.

        ``made``: numeric references the profile's sketches were taken from (see
        :class:`~driftline.monitors.reference.ModelReference`).
        """
        policy = self.spec.drift
        sketches = reference.features
        plans: list[tuple[str, NumericSketch | CategoricalCounts]] = [
            (name, sketches[name]) for name in self._watched if name in sketches
        ]
        if policy.prediction and PREDICTION in sketches:
            plans.append((PREDICTION, sketches[PREDICTION]))
        if policy.uncertainty and isinstance(sketches.get(UNCERTAINTY), NumericSketch):
            plans.append((UNCERTAINTY, sketches[UNCERTAINTY]))
        numeric = [name for name, sketch in plans if isinstance(sketch, NumericSketch)]
        together = [name for name in reference.correlation_features if name in numeric]
        multivariate = (
            policy.multivariate and reference.correlation is not None and len(together) >= 2
        )
        units = len(plans) + (1 if multivariate else 0)
        arl = policy.expected_events_between_false_alarms * max(units, 1)
        ready = ModelReference(reference, made=made)
        self._reference = CompactProfile(ready)
        rho = {
            name: min(max(value, 0.0), MAX_RHO)
            for name, value in reference.serial_correlation.items()
        }
        for name, _ in plans:
            detector: Detector
            if name in ready.numeric:
                detector = NumericDrift(
                    ready.numeric[name],
                    arl=arl,
                    shift=policy.location_shift,
                    ratio=policy.scale_ratio,
                    serial_rho=rho.get(name, 0.0),
                    seed=zlib.crc32(
                        f"{self.spec.model_id}/{self.spec.model_version}/{name}".encode()
                    ),
                )
            else:
                detector = CategoricalDrift(
                    ready.categorical[name],
                    arl=arl,
                    ratio=policy.category_ratio,
                    max_tracked=policy.tracked_categories,
                )
            self._subjects.append(Subject(name, detector, RunRing(detector.history)))
        if multivariate and reference.correlation is not None:
            indices = [reference.correlation_features.index(name) for name in together]
            matrix = np.asarray(reference.correlation)[np.ix_(indices, indices)]
            squares = [rho.get(name, 0.0) ** 2 for name in together]
            factor = float(np.mean([(1 + r2) / (1 - r2) for r2 in squares]))
            # Tuned to the inflation of s that a one-sd shift of a few features brings.
            inflation = min(2.0, max(1.2, 1 + 4 / len(together)))
            detector = MultivariateDrift(
                together,
                matrix,
                arl=arl,
                inflation=inflation,
                variance_factor=factor,
                reference_size=min(reference.features[name].count for name in together),
            )
            self._subjects.append(Subject(MULTIVARIATE, detector, RunRing(detector.history)))

    # State as plain data, so it can be kept outside the process (never pickled).

    def to_state(self, *, with_reference: bool = True) -> State:
        """Everything the monitor needs to go on, as plain JSON-ready data.

        The reference profile is kept once: the detectors' states leave out
        their reference (sketch, counts or correlation), which
        :meth:`from_state` rebuilds from the profile as :meth:`_start` built
        it. Recent values, event numbers, times and positions are packed
        exactly (see :mod:`driftline.monitors.packing`).

        Without ``with_reference`` the profile is left out too (``"reference"``
        says only whether there is one): it changes once, when the warm-up
        ends, while the rest changes with every event, so a caller that
        saves the state often keeps the profile (:attr:`reference`) apart and
        gives it back to :meth:`from_state`.

        >>> from driftline.schemas import FeatureSpec
        >>> spec = ModelSpec(model_id="m", model_version="1", task="regression",
        ...                  features=[FeatureSpec(name="x", kind="numeric")])
        >>> monitor = ModelMonitor(spec)
        >>> import json
        >>> copy = ModelMonitor.from_state(json.loads(json.dumps(monitor.to_state())))
        >>> copy.events, copy.warming_up
        (0, True)
        """
        if self._reference is None:
            reference: Any = None
        elif with_reference:
            reference = self._reference.profile.model_dump(mode="json")
        else:
            reference = True  # the profile is built again only when asked for
        if self._spec_state is None:
            self._spec_state = self.spec.model_dump(mode="json")
        return {
            "spec": self._spec_state,
            "reference": reference,
            "max_monitored_features": self.max_monitored_features,
            "quality_alpha": self.quality_alpha,
            "events": self._events,
            "recent_events": self._recent_events.packed(),
            "warmup": None if self._warmup is None else self._warmup.to_state(),
            "quality": self._quality.to_state(),
            "subjects": [
                {
                    "name": subject.name,
                    "kind": type(subject.detector).__name__,
                    "detector": subject.detector.to_state(with_reference=False),
                    "observed_at": pack_ints(subject.observed_at.values()),
                    "latched": subject.latched,
                    "quiet": subject.quiet,
                }
                for subject in self._subjects
            ],
        }

    @classmethod
    def from_state(
        cls,
        state: Mapping[str, Any],
        reference: ReferenceProfile | None = None,
        *,
        spec: ModelSpec | None = None,
    ) -> "ModelMonitor":
        """The monitor :meth:`to_state` described, going on exactly where it was.

        ``reference`` is the profile of a state written without it (and
        ignored for one written with it); ValueError if the state had a
        profile and none is given. ``spec``, if given, is the spec the
        monitor holds (the caller's own object, so that it can tell the
        monitor's spec by identity): ValueError if the state is of another.
        """
        saved_spec = ModelSpec.model_validate_json(json.dumps(state["spec"]))
        if spec is not None and spec != saved_spec:
            raise ValueError("state: saved for another spec")
        monitor = cls(
            saved_spec if spec is None else spec,
            max_monitored_features=state["max_monitored_features"],
            quality_alpha=state["quality_alpha"],
        )
        ready = None
        saved = state["reference"]
        if saved is True:
            if reference is None:
                raise ValueError("state: written without its reference profile, and none given")
            saved_profile = reference
        elif saved is not None:
            saved_profile = ReferenceProfile.model_validate_json(json.dumps(saved))
        if saved is not None:
            ready = ModelReference(saved_profile)
            monitor._reference = CompactProfile(ready)
        monitor._events = int(state["events"])
        monitor._recent_events.extend_packed(state["recent_events"])
        if state["warmup"] is None:
            monitor._warmup = None
        else:
            assert monitor._warmup is not None  # a monitor without a reference warms up
            monitor._warmup.load_state(state["warmup"])
        monitor._quality.load_state(state["quality"])
        for saved in state["subjects"]:
            detector = _detector_from_state(saved["kind"], saved["detector"], saved["name"], ready)
            observed_at = RunRing(detector.history, unpack_ints(saved["observed_at"]))
            monitor._subjects.append(
                Subject(saved["name"], detector, observed_at, saved["latched"], saved["quiet"])
            )
        return monitor

    # What the monitor is doing.

    @property
    def reference(self) -> ReferenceProfile | None:
        """The reference profile the drift detectors measure against; None during the warm-up.

        The registered profile, or the one built from the warm-up: built
        again at each read from what the detectors keep of it (see
        :class:`~driftline.monitors.reference.CompactProfile`).
        """
        return None if self._reference is None else self._reference.profile

    @property
    def events(self) -> int:
        """How many events with features or a prediction this monitor has processed."""
        return self._events

    @property
    def warming_up(self) -> bool:
        """Whether the monitor is still collecting its reference from the first events."""
        return self._warmup is not None

    @property
    def last_event(self) -> tuple[datetime, KafkaPosition | None] | None:
        """The event time and Kafka position of the last event processed (None before any)."""
        if not len(self._recent_events):
            return None
        return self._recent_events[len(self._recent_events) - 1]

    @property
    def drift_subjects(self) -> list[str]:
        """What is watched for drift: features, then the predictions and the features together."""
        return [subject.name for subject in self._subjects]

    @property
    def detectors(self) -> dict[str, Detector]:
        """Each drift subject's detector, by subject, in the order of :attr:`drift_subjects`."""
        return {subject.name: subject.detector for subject in self._subjects}

    @property
    def pressures(self) -> dict[str, float]:
        """How close each drift subject's tests are to alarming, by subject, in the order of
        :attr:`drift_subjects`: the largest statistic over its threshold (0 quiet, 1 at the
        alarm threshold). Empty during the warm-up."""
        return {subject.name: subject.detector.pressure for subject in self._subjects}

    @property
    def monitored_features(self) -> list[str]:
        """The features watched for drift once a reference is known, in the spec's order."""
        return list(self._watched)

    def quality_alarming(self, feature: str, check: QualityCheck) -> bool:
        """Whether a feature's data-quality check alarmed and no window has ended clean since."""
        return self._quality.rate_check(feature, check).alarming

    @property
    def unexpected_features(self) -> int:
        """Feature values received under names the spec does not know."""
        return self._quality.unexpected_features


def _detector_from_state(
    kind: str, state: Mapping[str, Any], name: str, ready: ModelReference | None
) -> Detector:
    """A detector restored by :meth:`ModelMonitor.from_state`, with its reference rebuilt
    from the monitor's profile as :meth:`ModelMonitor._start` gave it (unless the state
    carries its own)."""
    if kind == MultivariateDrift.__name__:
        correlation = None
        if "correlation" not in state and ready is not None:
            profile = ready.profile
            indices = [profile.correlation_features.index(f) for f in state["features"]]
            correlation = np.asarray(profile.correlation)[np.ix_(indices, indices)]
        return MultivariateDrift.from_state(state, correlation)
    if kind == NumericDrift.__name__:
        numeric = None if "reference" in state or ready is None else ready.numeric[name]
        return NumericDrift.from_state(state, numeric)
    if kind == CategoricalDrift.__name__:
        categorical = None if "reference" in state or ready is None else ready.categorical[name]
        return CategoricalDrift.from_state(state, categorical)
    raise ValueError(f"unknown detector kind {kind!r}")


_STATEFUL: tuple[type[Stateful], ...] = (ModelMonitor,)
"""The monitor here, held by the type checker to the state protocol (:class:`Stateful`)."""
