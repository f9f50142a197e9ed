"""Replay in several processes: the outputs and counts of one, every process ended after."""

import multiprocessing
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from replays import refused_lines, replayed
from typer.testing import CliRunner

from driftline import cli
from driftline.agents.intake import Decoded, InputMessage, InputTopic, Intake, IntakeCounters
from driftline.monitors.positions import Position
from driftline.parallel_replay import Shares, add_counters, packed, unpacked
from driftline.replay import Replay
from driftline.schemas import KafkaPosition
from driftline.simulate import (
    simulated_classifier_spec,
    simulated_classifier_traffic,
    simulated_model_spec,
    simulated_predictions,
)

MODELS = ("m0", "m1", "m2", "m3")


def interleaved(lines_of: Sequence[Sequence[bytes]]) -> list[bytes]:
    """The models' lines taken in turns, as their events would arrive together."""
    lines: list[bytes] = []
    for some in zip(*lines_of, strict=True):
        lines.extend(some)
    return lines


def drifting_lines(count: int, models: Iterable[str] = MODELS) -> list[bytes]:
    return interleaved(
        [
            [
                event.model_dump_json().encode()
                for event in simulated_predictions(
                    count, shift_at=count // 2, shift=1.0, model_id=model, seed=seed
                )
            ]
            for seed, model in enumerate(models)
        ]
    )


def bad_lines(good: bytes) -> list[bytes]:
    """Lines a worker refuses, made from a good one: each a reason of its own."""
    return [*refused_lines(good), b'{"model_id": "m1"}']


SPECS = [simulated_model_spec(model_id=model) for model in MODELS]


@pytest.fixture(scope="module")
def mixed() -> list[bytes]:
    lines = drifting_lines(2_500)
    bad = bad_lines(lines[0])
    cut = [line[:-7] for line in lines[:4]]  # each model's, its bytes naming it: its owner's
    # Bad lines and repeats spread over the batches, first ones before any good line.
    return [
        *bad[:2],
        *lines[:4_000],
        *bad[2:],
        *cut,
        lines[10],
        *lines[4_000:],
        lines[5_000],
        bad[0],
    ]


@pytest.fixture(scope="module")
def one_process(mixed: list[bytes]) -> tuple[list[str], IntakeCounters]:
    outputs, counters, _ = replayed(mixed, 1, SPECS)
    return outputs, counters


@pytest.mark.parametrize("processes", [2, 3])
def test_shared_processes_send_and_count_what_one_does(mixed, one_process, processes):
    outputs, counters, run = replayed(mixed, processes, SPECS)
    assert run.processes == processes
    assert outputs == one_process[0]
    assert counters == one_process[1]
    predictions = counters.topics[InputTopic.PREDICTIONS]
    assert predictions.duplicates == 2
    assert set(predictions.dead_letter_reasons) >= {"invalid_json", "invalid_event"}
    assert predictions.dead_lettered == len(bad_lines(mixed[2])) + len(MODELS) + 1
    assert sum(1 for output in outputs if '"status":"open"' in output) >= len(MODELS)
    assert multiprocessing.active_children() == []


def test_labels_are_joined_in_their_models_process(tmp_path):
    specs = [simulated_classifier_spec(model_id=model) for model in ("c0", "c1", "c2")]
    events, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    traffic = [
        list(simulated_classifier_traffic(2_000, shift_at=1_000, model_id=model, seed=seed))
        for seed, model in enumerate(("c0", "c1", "c2"))
    ]
    with events.open("w") as predicted, labels.open("w") as labelled:
        for some in zip(*traffic, strict=True):
            for event in some:
                print(
                    event.model_dump_json(), file=labelled if hasattr(event, "label") else predicted
                )
    runs = [Replay(specs, batch_size=700, processes=processes) for processes in (1, 2)]
    outputs = [[o.model_dump_json() for o in run.feed_file(events, labels)] for run in runs]
    assert outputs[0] == outputs[1]
    assert sum(1 for output in outputs[0] if '"realized"' in output) >= 3  # performance reports
    assert runs[0].intake.counters == runs[1].intake.counters
    assert runs[1].intake.counters.topics[InputTopic.LABELS].processed > 0


LINES = drifting_lines(300, MODELS[:3])
BAD = bad_lines(LINES[0])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    picks=st.lists(st.integers(0, len(LINES) + len(BAD) - 1), min_size=1, max_size=200),
    batch_size=st.sampled_from([1, 7, 50, 500]),
    processes=st.integers(2, 3),
)
def test_any_mix_of_lines_replays_alike_in_several_processes(picks, batch_size, processes):
    pool = [*LINES, *BAD]
    lines = [pool[pick] for pick in sorted(picks)]  # in order: drift tests see time go on
    alone = replayed(lines, 1, SPECS[:3], batch_size=batch_size)
    shared = replayed(lines, processes, SPECS[:3], batch_size=batch_size)
    assert shared[0] == alone[0]
    assert shared[1] == alone[1]


def test_a_failing_process_fails_the_replay_with_its_traceback(monkeypatch):
    processed = Intake.process_batch_each

    def failing(self: Intake, items: Sequence[Decoded | list]) -> list[list]:
        if any(isinstance(item, Decoded) and item.event.model_id == "m1" for item in items):
            raise ValueError("model m1 broke")
        return processed(self, items)

    monkeypatch.setattr(Intake, "process_batch_each", failing)  # the forked process has it too
    run = Replay([simulated_model_spec(model_id=m) for m in ("m0", "m1")], processes=2)
    with pytest.raises(RuntimeError, match="replay process 1 of 2 failed") as raised:
        list(run.feed(drifting_lines(100, ("m0", "m1"))))
    assert "ValueError: model m1 broke" in str(raised.value)
    assert multiprocessing.active_children() == []


def test_a_replay_stopped_early_leaves_no_process_behind():
    run = Replay([simulated_model_spec(model_id=m) for m in MODELS], batch_size=100, processes=3)
    outputs = run.feed([b"not json", *drifting_lines(500)])
    next(outputs)
    assert len(multiprocessing.active_children()) == 2
    outputs.close()
    assert multiprocessing.active_children() == []


def test_a_shared_replay_is_fed_once():
    run = Replay([simulated_model_spec(model_id=m) for m in ("m0", "m1")], processes=2)
    list(run.feed(drifting_lines(10, ("m0", "m1"))))
    with pytest.raises(RuntimeError, match="fed once"):
        list(run.feed(drifting_lines(10, ("m0", "m1"))))


def test_processes_are_capped_by_the_models_and_the_report():
    from driftline.agents.history import StatusHistory

    specs = [simulated_model_spec(model_id=m) for m in ("m0", "m1", "m0")]
    assert Replay(specs, processes=8).processes == 2
    assert Replay(specs, processes=8, history=StatusHistory()).processes == 1
    assert Replay(specs[:1], processes=8).processes == 2  # one after the other
    assert Replay(specs[:1], processes=1).processes == 1
    assert Replay([], processes=8).processes == 1
    with pytest.raises(ValueError, match="at least 1"):
        Replay(specs, processes=0)


def test_the_specs_models_are_shared_out_evenly_and_others_whatever_comes_first():
    shares = [Shares(share, 3, ["a", "b", "c", "d"]) for share in range(3)]
    owners = {m: [s.owns(m) for s in shares].index(True) for m in ["x", "d", "c", "b", "a", "y"]}
    assert {m: owners[m] for m in "abcd"} == {"a": 0, "b": 1, "c": 2, "d": 0}
    assert [s.owns(None) for s in shares] == [True, False, False]
    # Any other model's share is the same in every process, whatever each saw first.
    later = [Shares(share, 3, ["a", "b", "c", "d"]) for share in range(3)]
    for model_id in ["y", "x"]:
        assert [s.owns(model_id) for s in later] == [s.owns(model_id) for s in shares]
        assert sum(s.owns(model_id) for s in later) == 1


def test_counters_add_up_field_by_field():
    total, more = IntakeCounters(), IntakeCounters()
    for counters, n in ((total, 1), (more, 10)):
        for topic in InputTopic:
            topic_counters = counters.topics[topic]
            topic_counters.consumed = n
            topic_counters.processed = 2 * n
            topic_counters.dead_lettered = 3 * n
            topic_counters.duplicates = 4 * n
            topic_counters.waiting = 5 * n
            topic_counters.dead_letter_reasons.update({"invalid_json": n, topic.value: n})
        counters.alerts.update({"drift": n})
        counters.alert_messages.update({"open": n, "update": 2 * n})
        counters.triggers = 6 * n
    labels = total.topics[InputTopic.LABELS]  # held by the label join: added in place
    add_counters(total, more)
    assert total.topics[InputTopic.LABELS] is labels
    for topic in InputTopic:
        got = total.topics[topic]
        assert (got.consumed, got.processed, got.dead_lettered, got.duplicates, got.waiting) == (
            11,
            22,
            33,
            44,
            55,
        )
        assert got.dead_letter_reasons == {"invalid_json": 11, topic.value: 11}
    assert (total.alerts, total.alert_messages, total.triggers) == (
        {"drift": 11},
        {"open": 11, "update": 22},
        66,
    )


def test_a_batch_crosses_to_another_process_whole():
    batch = [
        InputMessage(InputTopic.PREDICTIONS, b"{}", None, Position("f", 0, 0)),
        InputMessage(InputTopic.MODELS, None, b"key", Position("f", 3, 2**40), 1.5),
        InputMessage(InputTopic.LABELS, b"", None, Position("g", 0, 1)),
    ]
    assert unpacked(*packed(batch)) == batch
    elsewhere = [batch[0]._replace(source=KafkaPosition(topic="t", partition=1, offset=2))]
    assert unpacked(*packed(elsewhere)) == elsewhere


def test_the_command_shares_the_models_among_processes(tmp_path: Path):
    specs: list[str] = []
    for model in MODELS[:3]:
        spec = tmp_path / f"{model}.yaml"
        spec.write_text(
            yaml.safe_dump(simulated_model_spec(model_id=model).model_dump(mode="json"))
        )
        specs += ["--spec", str(spec)]
    events = tmp_path / "events.jsonl"
    lines = drifting_lines(3_000, MODELS[:3])
    events.write_bytes(b"\n".join([*lines, b"not json", lines[3]]) + b"\n")
    results = [
        CliRunner().invoke(
            cli.app,
            ["replay", str(events), *specs, "--dead-letters", "--processes", processes],
        )
        for processes in ("1", "3", "0")
    ]
    for result in results:
        assert result.exit_code == 0, result.output
    assert " ALERT open " in results[0].stdout
    assert results[1].stdout == results[0].stdout
    assert results[2].stdout == results[0].stdout
    assert (
        results[1].stderr
        == results[0].stderr
        == (
            "9002 events: 9000 processed, 1 refused (1 invalid_json), 1 duplicates; "
            f"{results[0].stdout.count(' ALERT open ')} alerts\n"
        )
    )
    refused = CliRunner().invoke(cli.app, ["replay", str(events), *specs, "--processes", "-1"])
    assert refused.exit_code == 2
