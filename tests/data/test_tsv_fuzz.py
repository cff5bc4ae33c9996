"""Fuzz of the TSV readers (#15 item 5): random column orders, missing or extra fields, a BOM, CRLF
line ends, NaN / inf / negative / reversed times and unicode names give either a correct parse or
a DataError naming the file, never another exception."""

import math
import random

import pytest

from dcase_fpd_plugin.data.tsv import DataError, read_durations_tsv, read_strong_tsv, read_weak_tsv

CLASSES = ["Dog", "Speech", "Cat"]
TIMES = ["0.5", "1", "2.25", "nan", "inf", "-1", "1e3", "", "abc", "3,5", " 4 "]
NAMES = ["a.wav", "b.wav", "späße.wav", "日本.wav", "", "x y.wav", "c.flac"]
LABELS = CLASSES + ["", "Dog,Cat", "dog", "Unknown", "Speech,Speech"]


def _table(rng, columns):
    cols = list(columns)
    rng.shuffle(cols)
    if rng.random() < 0.15:
        cols.pop(rng.randrange(len(cols)))  # a missing column
    if rng.random() < 0.1:
        cols.append("extra")
    lines = ["\t".join(cols)]
    for _ in range(rng.randrange(0, 6)):
        values = {"filename": rng.choice(NAMES), "onset": rng.choice(TIMES), "offset": rng.choice(TIMES),
                  "event_label": rng.choice(LABELS), "event_labels": rng.choice(LABELS),
                  "duration": rng.choice(TIMES), "extra": "z"}
        row = [values[c] for c in cols]
        if rng.random() < 0.1:
            row = row[:-1]  # a missing field
        lines.append("\t".join(row))
    text = ("\r\n" if rng.random() < 0.3 else "\n").join(lines) + "\n"
    return ("\ufeff" if rng.random() < 0.2 else "") + text


@pytest.mark.parametrize("seed", range(200))
def test_readers_parse_or_refuse_clearly(tmp_path, seed):
    rng = random.Random(seed)
    readers = [(read_strong_tsv, ("filename", "onset", "offset", "event_label")),
               (read_weak_tsv, ("filename", "event_labels")),
               (read_durations_tsv, ("filename", "duration"))]
    reader, columns = readers[seed % 3]
    path = tmp_path / "f.tsv"
    path.write_bytes(_table(rng, columns).encode("utf-8"))
    try:
        result = reader(path, CLASSES) if reader is not read_durations_tsv else reader(path)
    except DataError as exc:
        assert str(path) in str(exc)  # names the file (and the line where it is one line's fault)
        return
    for name, value in result.items():
        assert name and "\ufeff" not in name
        if reader is read_strong_tsv:
            for e in value:
                assert math.isfinite(e.onset) and math.isfinite(e.offset) and 0 <= e.onset < e.offset
                assert e.event_label in CLASSES
        elif reader is read_weak_tsv:
            assert all(label in CLASSES for label in value)
        else:
            assert math.isfinite(value) and value > 0
