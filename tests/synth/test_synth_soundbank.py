"""Soundbank scanning (errors name the culprit) and splitting into disjoint sub-banks."""

from __future__ import annotations

import os

import pytest

from dcase_fpd_plugin.synth.soundbank import (SoundbankError, bank_classes, class_of_folder, scan_soundbank,
    split_soundbank)
from dcase_fpd_plugin.synth.toybank import make_toy_soundbank, write_tone

tiny_bank = make_toy_soundbank


def test_scan_finds_classes_variants_and_durations(tmp_path):
    bank = scan_soundbank(tiny_bank(tmp_path))
    assert bank.classes == ["Alarm", "Beep"]
    variants = sorted({s.variant for s in bank.foreground["Alarm"]})
    assert variants == ["", "_nOff", "_nOn", "_nOn_nOff"]
    assert {s.label for s in bank.foreground["Alarm"]} == {"Alarm", "Alarm_nOn", "Alarm_nOff", "Alarm_nOn_nOff"}
    assert bank.foreground["Beep"][0].duration == pytest.approx(0.6)
    assert len(bank.background) == 3 and bank.background[0].label == "background"
    assert class_of_folder("Cat_nOn_nOff") == ("Cat", "_nOn_nOff") and class_of_folder("Cat") == ("Cat", "")


def test_background_groups_are_accepted(tmp_path):
    tiny_bank(tmp_path)
    write_tone(tmp_path / "background" / "sins" / "room.flac", 3.0, 60, noise=True)
    bank = scan_soundbank(tmp_path)
    assert {s.label for s in bank.background} == {"background", "sins"}


def test_missing_class_is_named(tmp_path):
    tiny_bank(tmp_path)
    with pytest.raises(SoundbankError, match=r"\['Dog'\].*absent"):
        scan_soundbank(tmp_path, ["Alarm", "Dog"])


def test_empty_folder_is_named(tmp_path):
    tiny_bank(tmp_path)
    (tmp_path / "foreground" / "Beep_nOff").mkdir()
    with pytest.raises(SoundbankError, match=r"Beep_nOff: empty folder"):
        scan_soundbank(tmp_path)


def test_unreadable_file_is_named(tmp_path):
    tiny_bank(tmp_path)
    bad = tmp_path / "foreground" / "Beep" / "broken.wav"
    bad.write_bytes(b"not audio at all")
    with pytest.raises(SoundbankError, match=r"broken\.wav: unreadable audio file"):
        scan_soundbank(tmp_path)


def test_unread_classes_are_not_checked(tmp_path):
    tiny_bank(tmp_path)
    (tmp_path / "foreground" / "Other").mkdir()  # empty, but not asked for
    assert scan_soundbank(tmp_path, ["Alarm"]).classes == ["Alarm"]


def test_missing_background_is_named(tmp_path):
    tiny_bank(tmp_path)
    for p in (tmp_path / "background").iterdir():
        p.unlink()
    with pytest.raises(SoundbankError, match=r"background: empty folder"):
        scan_soundbank(tmp_path)
    os.rmdir(tmp_path / "background")
    with pytest.raises(SoundbankError, match=r"background: folder not found"):
        scan_soundbank(tmp_path)


def test_split_is_disjoint_complete_and_leaves_the_source_alone(tmp_path):
    src = tiny_bank(tmp_path / "bank", per_class=6)
    before = sorted(str(p.relative_to(src)) for p in src.rglob("*"))
    parts = split_soundbank(src, tmp_path / "parts", {"synth": 0.6, "weak": 0.2, "val": 0.2}, seed=3)
    assert sorted(str(p.relative_to(src)) for p in src.rglob("*")) == before
    seen: dict[str, str] = {}
    for name, root in parts.items():
        bank = scan_soundbank(root)
        assert bank.classes == ["Alarm", "Beep"]
        for f in root.rglob("*"):
            if f.is_symlink():
                target = os.path.realpath(f)
                assert target.startswith(str(src.resolve()))
                assert target not in seen, f"{target} in {name} and {seen.get(target)}"
                seen[target] = name
    # every source file lands in exactly one part; the biggest fraction gets the most files
    assert len(seen) == len([p for p in src.rglob("*") if p.is_file()])
    counts = {n: sum(1 for v in seen.values() if v == n) for n in parts}
    assert counts["synth"] > counts["weak"]
    # same seed, same split
    again = split_soundbank(src, tmp_path / "parts2", {"synth": 0.6, "weak": 0.2, "val": 0.2}, seed=3)
    listing = lambda r: sorted(str(p.relative_to(r)) for p in r.rglob("*"))  # noqa: E731
    assert all(listing(parts[n]) == listing(again[n]) for n in parts)
    with pytest.raises(FileExistsError):
        split_soundbank(src, tmp_path / "parts", {"synth": 0.6, "weak": 0.2, "val": 0.2}, seed=3)
    split_soundbank(src, tmp_path / "parts", {"synth": 0.6, "weak": 0.2, "val": 0.2}, seed=4, force=True)


def test_split_refuses_too_few_files(tmp_path):
    src = tiny_bank(tmp_path / "bank", per_class=2)
    with pytest.raises(SoundbankError, match=r"Beep: 2 file"):
        split_soundbank(src, tmp_path / "parts", {"a": 1, "b": 1, "c": 1}, seed=0)
    assert bank_classes(src) == ["Alarm", "Beep"]
