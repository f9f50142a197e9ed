"""One hot model keyed by event id, spread over eight partitions and two workers."""

import bisect
import time
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka_helpers import read_all, wait_until_caught_up

from driftline.monitors import ModelMonitor
from driftline.schemas import Alert, DeadLetter, KeyedBy, ReferenceProfile
from driftline.schemas.summaries import VersionSummary
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess

pytestmark = pytest.mark.kafka

PARTITIONS = 8


def test_two_workers_summarise_a_hot_model_and_one_tests_it(
    worker_settings: Settings, tmp_path: Path
):
    settings = worker_settings.model_copy(update={"topic_partitions": PARTITIONS})
    ensure_topics(settings)
    spec = simulated_model_spec(model_id="hot").model_copy(update={"keyed_by": KeyedBy.EVENT_ID})
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    producer.send(
        settings.models_topic, key=spec.registry_key(), value=spec.model_dump_json().encode()
    )
    producer.flush()
    workers = [
        WorkerProcess(
            settings.model_copy(update={"data_dir": tmp_path / name}), tmp_path / f"{name}.log"
        )
        for name in ("worker-a", "worker-b")
    ]
    try:
        for worker in workers:
            worker.start()
        events = list(simulated_predictions(24_000, shift_at=16_000, seed=7, model_id="hot"))
        by_id = {event.event_id: event for event in events}
        for event in events:  # keyed by event id: spread over every partition
            producer.send(
                settings.predictions_topic,
                key=event.event_id.encode(),
                value=event.model_dump_json().encode(),
            )
        producer.send(settings.predictions_topic, key=b"bad", value=b"{not json")
        producer.flush()
        producer.close()
        for topic in (settings.predictions_topic, settings.summaries_topic):
            wait_until_caught_up(settings.bootstrap_servers, settings.app_id, topic, timeout=180)
        time.sleep(1.0)
        wait_until_caught_up(
            settings.bootstrap_servers, settings.app_id, settings.summaries_topic, timeout=60
        )
    finally:
        codes = [worker.stop() for worker in workers if worker.running]
    logs = [worker.log_text() for worker in workers]
    assert codes == [0, 0], [log[-3000:] for log in logs]
    assert all("Traceback" not in log for log in logs), logs

    summaries = [
        VersionSummary.model_validate_json(value or b"")
        for value in read_all(settings.bootstrap_servers, settings.summaries_topic)
    ]
    # Every partition's batches summarised, all of the events in them once at least.
    assert {summary.source.partition for summary in summaries} == set(range(PARTITIONS))
    assert sum(summary.events for summary in summaries) >= len(events)
    assert {summary.spread for summary in summaries} == {PARTITIONS}
    references = [
        ReferenceProfile.model_validate_json(value or b"")
        for value in read_all(settings.bootstrap_servers, settings.references_topic)
    ]
    assert [(r.model_id, r.source) for r in references] == [("hot", references[0].source)]
    assert references[0].source.startswith("warmup:")
    alerts = [
        Alert.model_validate_json(value or b"")
        for value in read_all(settings.bootstrap_servers, settings.alerts_topic)
    ]
    opened = [alert for alert in alerts if alert.status.value == "open"]
    assert "x" in {alert.feature for alert in opened}
    assert {alert.feature for alert in alerts} <= {"x", "(prediction)", "(multivariate)", None}
    assert len({alert.alert_id for alert in opened}) == len(opened), "an alert opened twice"
    first_x = min((a for a in opened if a.feature == "x"), key=lambda a: a.event_time)
    assert first_x.event_time >= events[16_000].event_time
    assert first_x.evidence is not None
    # Against the oracle, one process event by event: as soon, but for the summaries. An
    # alarm is known at the end of the summary in which the test crossed, and the stream's
    # events in that summary's span are those of a round of every partition's summaries.
    oracle = ModelMonitor(spec).update_many(events)
    oracle_x = min(events.index(by_id[f.event_id]) for f in oracle.drifts if f.subject == "x")
    times = [event.event_time for event in events]
    worker_x = bisect.bisect_left(times, first_x.event_time)
    summary_round = PARTITIONS * max(s.events for s in summaries)
    assert oracle_x <= worker_x <= oracle_x + summary_round, (oracle_x, worker_x, summary_round)
    letters = [
        DeadLetter.model_validate_json(value or b"")
        for value in read_all(settings.bootstrap_servers, settings.dead_letters_topic)
    ]
    # Sent again if a rebalance handed its partition on before its offset was committed.
    assert {letter.reason.value for letter in letters} == {"invalid_json"}
