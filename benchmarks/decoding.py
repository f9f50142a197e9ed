"""Decoding benchmark: microseconds per input event, from Kafka bytes to a validated event.

Compares, on prediction events of 20 numeric features (about 500 bytes):

- ``orjson.loads`` alone: parsing, no validation (a floor, not an option);
- pydantic's ``PredictionEvent.model_validate_json``: the validation itself;
- decode as it was before the duplicate-key shortcut: every event that
  validates is parsed once more by :mod:`json` to look for repeated keys
  (reproduced by giving :mod:`driftline.streams.codecs` no key counts);
- :func:`~driftline.streams.codecs.decode` and
  :func:`~driftline.streams.codecs.decode_many` as they are.

Each runs on three batches: valid events written compactly (as orjson or
most producers write them), valid events written with spaces (as Python's
``json.dumps`` does), and compact events of which 5% are bad in one of the
ways the dead-letter reasons name. Before timing, old and new decode are
checked to give the same results on every batch. Each figure is the
process's CPU time per event, summed over chunks of the batch (``--chunk``)
each taken at its best of ``--repeats`` passes, the decoders taking turns,
so that other work on the machine inflates it as little as possible.

    PYTHONSAFEPATH=1 .venv/bin/python benchmarks/decoding.py [--events N] [--repeats R] [--chunk C]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import orjson
from pydantic import ValidationError

from driftline.schemas import PredictionEvent
from driftline.streams import codecs
from driftline.streams.codecs import decode, decode_many

FEATURES = 20
MAX_BYTES = 1_048_576
BAD_SHARE = 0.05

Decoder = Callable[[Sequence[bytes]], object]


def valid_document(rng: random.Random, index: int) -> dict[str, object]:
    return {
        "model_id": "churn",
        "model_version": "3",
        "event_id": f"e-{index:08d}",
        "event_time": "2026-01-01T00:00:00.123Z",
        "features": {f"feature_{i:02d}": round(rng.gauss(0, 1), 6) for i in range(FEATURES)},
        "prediction": round(rng.random(), 6),
    }


BAD_EDITS: list[Callable[[bytes], bytes]] = [
    lambda v: v[: len(v) // 2],  # cut short
    lambda v: v.replace(b'"feature_01":', b'"feature_00":'),  # a repeated key
    lambda v: v.replace(b'"prediction":', b'"prediction":NaN,"x":'),
    lambda v: v.replace(b'"prediction":', b'"prediction":1e400,"x":'),
    lambda v: v.replace(b'"model_id":"churn"', b'"model_id":7'),  # a wrong type
    lambda v: v.replace(b'"event_time":', b'"time":'),  # a missing and an unknown field
    lambda v: v.replace(b'"churn"', b'"ch\xffrn"'),  # not UTF-8
    lambda v: v.replace(b'"churn"', b'"ch\\ud800rn"'),  # a lone surrogate
    lambda v: v.replace(b'"model_version":"3"', b'"model_version":"3","schema_version":2'),
]


def batches(count: int, seed: int = 1) -> dict[str, list[bytes]]:
    rng = random.Random(seed)
    documents = [valid_document(rng, index) for index in range(count)]
    compact = [orjson.dumps(document) for document in documents]
    spaced = [json.dumps(document).encode() for document in documents]
    mixed = [
        rng.choice(BAD_EDITS)(value) if rng.random() < BAD_SHARE else value for value in compact
    ]
    return {
        "valid, compact": compact,
        "valid, with spaces": spaced,
        f"{BAD_SHARE:.0%} bad, compact": mixed,
    }


@contextmanager
def without_shortcut() -> Iterator[None]:
    """decode as before the shortcut: no model's keys are counted, so every one is parsed again."""
    counts = dict(codecs._KEPT_KEYS)
    codecs._KEPT_KEYS.clear()
    try:
        yield
    finally:
        codecs._KEPT_KEYS.update(counts)


def orjson_alone(values: Sequence[bytes]) -> object:
    results: list[object] = []
    for value in values:
        try:
            results.append(orjson.loads(value))
        except orjson.JSONDecodeError as error:
            results.append(error)
    return results


def pydantic_alone(values: Sequence[bytes]) -> object:
    results: list[object] = []
    for value in values:
        try:
            results.append(PredictionEvent.model_validate_json(value))
        except ValidationError as error:
            results.append(error)
    return results


def decode_each(values: Sequence[bytes]) -> object:
    return [decode(PredictionEvent, value, max_bytes=MAX_BYTES) for value in values]


def decode_each_before_shortcut(values: Sequence[bytes]) -> object:
    with without_shortcut():
        return decode_each(values)


def decode_batch(values: Sequence[bytes]) -> object:
    return decode_many(PredictionEvent, values, max_bytes=MAX_BYTES)


DECODERS: dict[str, Decoder] = {
    "orjson.loads alone (no validation)": orjson_alone,
    "pydantic model_validate_json alone": pydantic_alone,
    "decode before the shortcut": decode_each_before_shortcut,
    "decode": decode_each,
    "decode_many": decode_batch,
}


def microseconds_per_event(
    decoders: dict[str, Decoder], values: Sequence[bytes], repeats: int, chunk: int
) -> dict[str, float]:
    """Each decoder's CPU time per event: every chunk of the batch at its best of ``repeats``.

    Short chunks, each decoded by every decoder in turn ``repeats`` times, let
    the best time of each chunk come from a moment when nothing else ran.
    """
    spent = dict.fromkeys(decoders, 0)
    for start in range(0, len(values), chunk):
        part = values[start : start + chunk]
        best = dict.fromkeys(decoders, 2**63)
        for _ in range(repeats):
            for label, decoder in decoders.items():
                begin = time.process_time_ns()
                decoder(part)
                best[label] = min(best[label], time.process_time_ns() - begin)
        for label in decoders:
            spent[label] += best[label]
    return {label: total / len(values) / 1_000 for label, total in spent.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events per batch")
    parser.add_argument("--repeats", type=int, default=7, help="passes over each chunk")
    parser.add_argument("--chunk", type=int, default=500, help="events per timed chunk")
    options = parser.parse_args()

    data = batches(options.events)
    for name, values in data.items():
        if decode_each(values) != decode_each_before_shortcut(values):
            raise SystemExit(f"{name}: decode gives other results than before the shortcut")
        if decode_batch(values) != decode_each(values):
            raise SystemExit(f"{name}: decode_many gives other results than decode")

    sizes = [len(value) for value in data["valid, compact"]]
    print(
        f"{options.events:,} prediction events of {FEATURES} numeric features, "
        f"{sum(sizes) / len(sizes):.0f} bytes on average (compact); "
        f"CPU µs per event, each chunk of {options.chunk} at its best of {options.repeats} passes"
    )
    width = max(map(len, DECODERS))
    print(f"{'':{width}}" + "".join(f"  {name:>22}" for name in data))
    for values in data.values():  # warm up: caches, allocator, branch predictors
        for decoder in DECODERS.values():
            decoder(values)
    figures = [
        microseconds_per_event(DECODERS, values, options.repeats, options.chunk)
        for values in data.values()
    ]
    for label in DECODERS:
        print(f"{label:{width}}" + "".join(f"  {batch[label]:>22.2f}" for batch in figures))


if __name__ == "__main__":
    main()
