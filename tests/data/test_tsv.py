from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from dcase_fpd_plugin.data.datasets import strong_records, weak_records
from dcase_fpd_plugin.data.tsv import DataError, read_durations_tsv, read_strong_tsv, read_weak_tsv

CLASSES = ["Dog", "Cat", "Speech"]


def write(path, text):
    path.write_text(text)
    return path


def test_strong_reads_events_and_empty_clips(tmp_path):
    f = write(tmp_path / "s.tsv", "filename\tonset\toffset\tevent_label\na.wav\t0.5\t1.5\tDog\na.wav\t2\t3\tCat\nb.wav\t\t\t\n")
    ev = read_strong_tsv(f, CLASSES)
    assert [(e.onset, e.offset, e.event_label) for e in ev["a.wav"]] == [(0.5, 1.5, "Dog"), (2.0, 3.0, "Cat")]
    assert ev["b.wav"] == []


@pytest.mark.parametrize("body,pattern", [
    ("filename\tonset\tevent_label\na.wav\t0\tDog\n", r"s.tsv:1: missing column\(s\) \['offset'\]"),
    ("filename\tonset\toffset\tevent_label\na.wav\t0\t1\tDog\na.wav\t0\t1\tCow\n", r"s.tsv:3: unknown class 'Cow'"),
    ("filename\tonset\toffset\tevent_label\na.wav\t2\t1\tDog\n", r"s.tsv:2: onset 2.0 >= offset 1.0"),
    ("filename\tonset\toffset\tevent_label\na.wav\t-1\t1\tDog\n", r"s.tsv:2: negative onset"),
    ("filename\tonset\toffset\tevent_label\na.wav\tx\t1\tDog\n", r"s.tsv:2: onset 'x' is not a number"),
])
def test_strong_errors_name_file_and_line(tmp_path, body, pattern):
    f = write(tmp_path / "s.tsv", body)
    with pytest.raises(DataError, match=pattern):
        read_strong_tsv(f, CLASSES)


def test_weak_and_durations_errors(tmp_path):
    w = write(tmp_path / "w.tsv", "filename\tevent_labels\na.wav\tDog,Cat\nb.wav\tDog,Horse\n")
    with pytest.raises(DataError, match=r"w.tsv:3: unknown class 'Horse'"):
        read_weak_tsv(w, CLASSES)
    w2 = write(tmp_path / "w2.tsv", "filename\tlabels\na.wav\tDog\n")
    with pytest.raises(DataError, match=r"w2.tsv:1: missing column"):
        read_weak_tsv(w2, CLASSES)
    d = write(tmp_path / "d.tsv", "filename\tduration\na.wav\t10\nb.wav\t-2\n")
    with pytest.raises(DataError, match=r"d.tsv:3: negative duration"):
        read_durations_tsv(d)
    assert read_weak_tsv(write(tmp_path / "ok.tsv", "filename\tevent_labels\na.wav\tDog,Cat\n"), CLASSES) == {
        "a.wav": ["Dog", "Cat"]}


def test_missing_tsv_named(tmp_path):
    with pytest.raises(DataError, match=r"nope.tsv: file not found"):
        read_strong_tsv(tmp_path / "nope.tsv")


def _audio(folder, name, seconds=1.0, sr=16000):
    folder.mkdir(exist_ok=True)
    sf.write(folder / name, np.zeros(int(seconds * sr), np.float32), sr)


def test_absent_and_unreadable_audio_named(tmp_path):
    audio = tmp_path / "audio"
    _audio(audio, "a.wav")
    (audio / "broken.wav").write_bytes(b"RIFF....not audio")
    w = write(tmp_path / "w.tsv", "filename\tevent_labels\na.wav\tDog\nmissing.wav\tCat\nbroken.wav\tDog\n")
    with pytest.raises(DataError) as e:
        weak_records(audio, w, CLASSES)
    msg = str(e.value)
    assert "2 of 3" in msg and "missing.wav: audio file not found" in msg and "broken.wav: unreadable audio" in msg
    # allowed fraction: goes on without them, with a warning naming them
    with pytest.warns(UserWarning, match="missing.wav"):
        recs = weak_records(audio, w, CLASSES, max_missing_fraction=0.7)
    assert [r.path.name for r in recs] == ["a.wav"]


def test_durations_add_empty_clips(tmp_path):
    audio = tmp_path / "audio"
    _audio(audio, "a.wav")
    _audio(audio, "empty.wav")
    s = write(tmp_path / "s.tsv", "filename\tonset\toffset\tevent_label\na.wav\t0\t0.5\tDog\n")
    d = write(tmp_path / "d.tsv", "filename\tduration\na.wav\t1\nempty.wav\t1\n")
    recs = strong_records(audio, s, CLASSES, d)
    assert {r.path.name: len(r.events) for r in recs} == {"a.wav": 1, "empty.wav": 0}


def test_a_utf8_bom_is_not_part_of_the_first_column(tmp_path):
    """#15 row 13: a TSV saved by Excel as UTF-8 starts with a BOM; it was a 'missing column'."""
    from dcase_fpd_plugin.data.tsv import read_strong_tsv

    p = tmp_path / "s.tsv"
    p.write_bytes("\ufefffilename\tonset\toffset\tevent_label\na.wav\t0.5\t1.0\tDog\n".encode("utf-8"))
    assert read_strong_tsv(p)["a.wav"][0].event_label == "Dog"


@pytest.mark.parametrize("key, stage, message", [
    # #15 row 13: 'a dataset needs at least one clip' named no file
    ("data.synth_tsv", "fit", r"header_only\.tsv: no clip listed"),
    # #15 row 8: a header-only validation TSV gave exit 0 and every metric null
    ("data.val_tsv", "validate", r"header_only\.tsv: no event"),
])
def test_a_header_only_tsv_is_refused_naming_it(key, stage, message, demo_overrides, tmp_path):
    from dcase_fpd_plugin.data.datamodule import SEDDataModule
    from dcase_fpd_plugin.data.tsv import DataError
    from dcase_fpd_plugin.recipe.loading import load_recipe

    empty = tmp_path / "header_only.tsv"
    empty.write_text("filename\tonset\toffset\tevent_label\n")
    recipe = load_recipe(Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml",
                         demo_overrides + [f"{key}={empty}"])
    with pytest.raises(DataError, match=message):
        SEDDataModule.from_recipe(recipe, 156, 0.064).setup(stage)
