"""benchmarks/device_bank.py: the soundbank to Opus and back, same layout; bad folders refused."""

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import device_bank  # noqa: E402 (imported by name: its process pool pickles its functions by name)


def _bank(root: Path) -> Path:
    t = np.arange(16000) / 16000
    for sub, freq in (("foreground/Dog", 440.0), ("background/street", 220.0)):
        (root / sub).mkdir(parents=True)
        sf.write(root / sub / "a.flac", 0.3 * np.sin(2 * np.pi * freq * t), 16000, format="FLAC", subtype="PCM_16")
    (root / "PROVENANCE.csv").write_text("file,source\nforeground/Dog/a.flac,freesound\n")
    return root


def test_encode_then_decode_keeps_layout_rate_and_other_files(tmp_path):
    bank = _bank(tmp_path / "bank")
    device_bank.main(["encode", str(bank), str(tmp_path / "opus")])
    assert sorted(p.relative_to(tmp_path / "opus").as_posix() for p in (tmp_path / "opus").rglob("*") if p.is_file()) \
        == ["PROVENANCE.csv", "background/street/a.opus", "foreground/Dog/a.opus"]
    device_bank.main(["decode", str(tmp_path / "opus"), str(tmp_path / "flac")])
    back, sr = sf.read(tmp_path / "flac" / "foreground" / "Dog" / "a.flac")
    ref, _ = sf.read(bank / "foreground" / "Dog" / "a.flac")
    assert sr == 16000 and sf.info(tmp_path / "flac" / "foreground" / "Dog" / "a.flac").subtype == "PCM_16"
    n = min(len(back), len(ref))  # lossy: close, not equal
    assert abs(len(back) - len(ref)) < 1000 and np.corrcoef(back[:n], ref[:n])[0, 1] > 0.9
    assert (tmp_path / "flac" / "PROVENANCE.csv").read_text() == (bank / "PROVENANCE.csv").read_text()
    assert not [p for p in (tmp_path / "flac").rglob("*") if p.name.startswith(".")]  # no temporary files left


def test_bad_folders_are_refused_and_nothing_is_written(tmp_path, capsys):
    bank = _bank(tmp_path / "bank")
    with pytest.raises(SystemExit, match="is not a folder"):
        device_bank.main(["encode", str(tmp_path / "none"), str(tmp_path / "out")])
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep")
    with pytest.raises(SystemExit, match="is not empty; give a new folder"):
        device_bank.main(["encode", str(bank), str(full)])
    assert [p.name for p in full.iterdir()] == ["mine.txt"] and (full / "mine.txt").read_text() == "keep"
    with pytest.raises(SystemExit, match="encode SRC DST"):  # a wrong verb: the usage
        device_bank.main(["convert", str(bank), str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
