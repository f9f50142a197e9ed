"""``driftline demo``: a local broker, a worker and drifting traffic, end to end.

Everything runs on this machine: the broker on 127.0.0.1, the worker as a
child process, a simulated model (registered with its spec first) whose
feature ``x`` shifts half way and whose feature ``y`` starts going missing
three quarters of the way, and a subscriber printing alerts as they arrive.
"""

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from driftline.broker import (
    KAFKA_VERSION,
    LocalKafkaBroker,
    cached_broker_jars,
    ensure_broker_jars,
    free_port,
)
from driftline.client import AlertSubscriber, Publisher
from driftline.schemas import Alert, RetrainTrigger
from driftline.schemas.lines import output_line
from driftline.simulate import simulated_model_spec, simulated_predictions
from driftline.streams.settings import Settings
from driftline.streams.topics import ensure_topics
from driftline.worker_process import WorkerProcess


def run_demo(
    *,
    events: int = 6_000,
    rate: float = 500.0,
    shift: float = 3.0,
    linger: float = 10.0,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> list[Alert | RetrainTrigger]:
    """Run the demo; return the alerts it printed. Ctrl-C stops it cleanly."""
    alerts: list[Alert | RetrainTrigger] = []
    with tempfile.TemporaryDirectory(prefix="driftline-demo-") as scratch:
        workdir = Path(scratch)
        if cached_broker_jars() is None:
            say(
                f"fetching the Apache Kafka {KAFKA_VERSION} broker jars with Maven "
                "(first run only) ..."
            )
            ensure_broker_jars()
        say(f"starting a local Apache Kafka {KAFKA_VERSION} broker on 127.0.0.1 ...")
        with LocalKafkaBroker(data_dir=workdir / "kafka") as broker:
            settings = Settings(
                bootstrap_servers=broker.bootstrap_servers,
                app_id="driftline-demo",
                data_dir=workdir / "worker",
                log_level="warning",
                web_enabled=True,  # the status page, on 127.0.0.1 only
                web_port=free_port(),
            )
            ensure_topics(settings)
            say(
                f"broker ready at {broker.bootstrap_servers}; starting `driftline worker`, "
                f"its status page at http://127.0.0.1:{settings.web_port}/ ..."
            )
            with WorkerProcess(settings, workdir / "worker.log") as worker:
                stop = threading.Event()
                printer = threading.Thread(
                    target=_print_alerts, args=(settings, alerts, stop, say), daemon=True
                )
                printer.start()
                try:
                    say(
                        f"registering model demo-model v1, then publishing {events} predictions "
                        f"at {rate:g}/s: feature x shifts from N(0,1) to N({shift:g},1) at event "
                        f"#{events // 2 + 1}; y stays N(0,1) but 30% of its values go missing "
                        f"from event #{events * 3 // 4 + 1}"
                    )
                    _publish(settings, events=events, rate=rate, shift=shift, seed=seed)
                    say("all events published; waiting for the worker to catch up ...")
                    _wait_until_consumed(settings, timeout=120.0)
                    say(f"watching for alerts for {linger:g} s more ...")
                    time.sleep(linger)
                except KeyboardInterrupt:
                    say("interrupted; stopping ...")
                finally:
                    stop.set()
                    printer.join(timeout=10)
                    code = worker.stop()
                    if code != 0:
                        say(f"the worker exited with code {code}; its log:\n{worker.log_text()}")
        say(f"done: {len(alerts)} alert(s) received; broker and worker stopped")
    return alerts


def _wait_until_consumed(settings: Settings, *, timeout: float) -> None:
    """Wait until the worker group has committed every prediction published, or ``timeout``.

    A slow machine then shows every alert instead of cutting the demo short.
    """
    deadline = time.monotonic() + timeout
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        partitions = [
            TopicPartition(settings.predictions_topic, p)
            for p in consumer.partitions_for_topic(settings.predictions_topic) or ()
        ]
        ends = consumer.end_offsets(partitions)
        while time.monotonic() < deadline:
            try:
                committed = admin.list_group_offsets(settings.app_id).get(settings.app_id, {})
            except KafkaError:
                committed = {}
            if all(
                tp in committed and committed[tp].offset >= end for tp, end in ends.items() if end
            ):
                return
            time.sleep(0.5)
    finally:
        consumer.close()
        admin.close()


def _publish(settings: Settings, *, events: int, rate: float, shift: float, seed: int) -> None:
    started = time.monotonic()
    with Publisher(
        settings.bootstrap_servers,
        predictions_topic=settings.predictions_topic,
        models_topic=settings.models_topic,
    ) as pub:
        pub.register(simulated_model_spec())
        stream = simulated_predictions(
            events, shift_at=events // 2, shift=shift, seed=seed, missing_from=events * 3 // 4
        )
        for index, event in enumerate(stream):
            pub.publish(event)
            ahead = (index + 1) / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)


def _print_alerts(
    settings: Settings,
    alerts: list[Alert | RetrainTrigger],
    stop: threading.Event,
    say: Callable[[str], None],
) -> None:
    with AlertSubscriber(
        settings.bootstrap_servers,
        alerts_topic=settings.alerts_topic,
        retrain_triggers_topic=settings.retrain_triggers_topic,
        from_beginning=True,
    ) as subscriber:
        while not stop.is_set():
            for alert in subscriber.poll(timeout=0.5):
                alerts.append(alert)
                say(output_line(alert))
