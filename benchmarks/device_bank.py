"""The soundbank carried to a GPU machine as Opus, and back to FLAC there (same layout and names;
other files, such as PROVENANCE.csv, copied as they are), in parallel:

    python3 benchmarks/device_bank.py encode SRC DST   # here: FLAC -> OGG/Opus (~6.7 MiB for the bank)
    python3 benchmarks/device_bank.py decode SRC DST   # there: Opus -> 16-bit FLAC, for `bench build`

Opus at compression level 0.95 (soundfile): ~20 KB per 10 s; lossy, so a bench rendered from the
decoded bank has clips close to, not bit-identical with, the CPU bench's. DST must be new or empty.
"""
import os
import shutil
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dcase_fpd_plugin.atomic import atomic_write

SUFFIX = {"encode": (".flac", ".opus"), "decode": (".opus", ".flac")}


def encode(src: Path, dst: Path) -> None:
    x, sr = sf.read(src)
    sf.write(dst, x, sr, format="OGG", subtype="OPUS", compression_level=0.95)


def decode(src: Path, dst: Path) -> None:
    x, sr = sf.read(src)
    sf.write(dst, x, sr, format="FLAC", subtype="PCM_16")


def convert(job: tuple[str, Path, Path]) -> int:
    mode, src, dst = job
    # a killed run leaves no half-written file under the final name (the format is named, not guessed)
    atomic_write(dst, lambda tmp: (encode if mode == "encode" else decode)(src, tmp))
    return 1


def main(argv: list[str]) -> None:
    if len(argv) != 3 or argv[0] not in SUFFIX:
        raise SystemExit(__doc__)
    mode, src_root, dst_root = argv[0], Path(argv[1]), Path(argv[2])
    if not src_root.is_dir():
        raise SystemExit(f"device_bank: {src_root} is not a folder")
    if dst_root.exists() and any(dst_root.iterdir()):
        raise SystemExit(f"device_bank: {dst_root} is not empty; give a new folder (nothing is overwritten)")
    old, new = SUFFIX[mode]
    jobs = []
    for f in sorted(src_root.rglob("*")):
        if not f.is_file():
            continue
        out = dst_root / f.relative_to(src_root)
        out.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix == old:
            jobs.append((mode, f, out.with_suffix(new)))
        else:
            shutil.copy(f, out)
    with ProcessPoolExecutor(min(16, os.cpu_count() or 1)) as ex:
        n = sum(ex.map(convert, jobs, chunksize=8))
    print(f"{mode}d {n} files into {dst_root}")


if __name__ == "__main__":
    main(sys.argv[1:])
