"""Decode an Opus soundbank (carried to a GPU machine) to FLAC, same layout and names, in parallel:

    python3 benchmarks/device_decode_bank.py SRC DST
"""
import shutil, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf

SRC, DST = Path(sys.argv[1]), Path(sys.argv[2])


def one(p: Path) -> int:
    out = DST / p.relative_to(SRC).with_suffix(".flac")
    out.parent.mkdir(parents=True, exist_ok=True)
    x, sr = sf.read(p)
    sf.write(out, x, sr, format="FLAC", subtype="PCM_16")
    return 1


if __name__ == "__main__":
    for f in SRC.rglob("*"):
        if f.is_file() and f.suffix != ".opus":
            (DST / f.relative_to(SRC)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, DST / f.relative_to(SRC))
    files = sorted(SRC.rglob("*.opus"))
    with ProcessPoolExecutor(16) as ex:
        print(f"decoded {sum(ex.map(one, files, chunksize=8))} files to {DST}")
