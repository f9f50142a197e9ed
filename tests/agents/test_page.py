"""The status page's HTML, from a replayed history: what it must show, and nothing it loads."""

import re
from pathlib import Path

from html_elements import elements
from samples import write_classifier_traffic

from driftline.agents.history import StatusHistory
from driftline.agents.page import status_page
from driftline.replay import Replay
from driftline.schemas import DeadLetter
from driftline.simulate import simulated_classifier_spec

REPORT = {
    "topics": {
        "predictions": {
            "consumed": 8_003,
            "processed": 8_000,
            "dead_lettered": 3,
            "duplicates": 0,
            "waiting": 0,
            "dead_letter_reasons": {"invalid_event": 1, "invalid_json": 2},
        }
    }
}


BAD_EVENTS = [
    b"{broken",  # names no model: counted for the worker only
    b'{"model_id": "demo-classifier", "model_version": "1", "event_id": "bad-1"}',  # no time
    b'{"model_id": "unknown", "model_version": "1", "event_id": "u-1",'
    b' "event_time": "2026-01-01T00:00:00Z"}',
]


def rendered(tmp_path: Path) -> str:
    history = StatusHistory()
    run = Replay([simulated_classifier_spec()], history=history, batch_size=250)
    events, labels = write_classifier_traffic(tmp_path)
    with events.open("ab") as file:
        file.write(b"\n".join(BAD_EVENTS) + b"\n")
    outputs = list(run.feed_file(events, labels))
    assert len([o for o in outputs if isinstance(o, DeadLetter)]) == 3
    assert list(history.versions) == [("demo-classifier", "1")]  # never the unknown model
    return status_page(history, REPORT, {("predictions", 0): 12}, title="driftline: test")


def test_the_page_shows_the_drifted_feature_its_open_alert_and_performance(tmp_path: Path):
    document = rendered(tmp_path)
    found = elements(document).found
    figures = [a for tag, a in found if tag == "figure"]
    drifted = {a["data-subject"] for a in figures if "drifted" in a["class"].split()}
    assert "x" in drifted
    assert "y" not in drifted
    open_rows = {a["data-subject"] for tag, a in found if a.get("class") == "alert open"}
    assert {"x", "(prediction)", "(model)"} <= open_rows
    crossed = {a["data-subject"] for tag, a in found if a.get("data-crossed") == "true"}
    assert "x" in crossed
    assert any(a.get("class") == "chart performance" for _, a in found)
    assert any(a.get("class") == "trigger" for _, a in found)
    assert "8,000 events" in document
    assert "1 invalid_event, 2 invalid_json" in document
    assert "partition 0 of events.jsonl" in document  # the version's last position
    assert "8,000 events; dead letters: 1 invalid_event;" in document


def test_the_page_loads_nothing_and_runs_no_script(tmp_path: Path):
    document = rendered(tmp_path)
    found = elements(document).found
    assert not [tag for tag, _ in found if tag in ("script", "link", "img", "iframe")]
    assert not [a for _, a in found if "src" in a]
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg)", document)


def test_an_empty_worker_says_so():
    document = status_page(StatusHistory(), {"topics": {}}, {})
    elements(document)
    assert "No model version has events yet." in document


def test_versions_left_out_are_counted_on_the_page():
    history = StatusHistory(max_versions=1)
    for version in ("1", "2", "3"):
        history.record_pressures(("m", version), 1, {"x": 0.1})
    document = status_page(history, {"topics": {}}, {})
    elements(document)
    assert "2 more model versions are monitored but not drawn: the page keeps 1." in document
