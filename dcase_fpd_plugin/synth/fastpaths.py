"""Two shortcuts around work scaper repeats without changing what it produces.

Profiling scaper 1.6.5 on 10-s, 16-kHz clips (2.5 events per clip) showed, per clip:

* every event goes through sox (soxbindings) with a ``rate -h <sr>`` effect even when the source
  already has the output rate and channel count; sox then only converts the samples to 32-bit
  integers and back (differences ~5e-10) but costs ~20 % of the clip's time;
* ``soundfile.info`` is called about a dozen times per clip on the same few files.

:func:`scaper_fast_paths` skips the first (returns a copy of the input when the effect chain is
exactly that no-op resampling) and caches the second (keyed by path, size and mtime), for the
duration of a ``with`` block. Anything else (another rate, stereo sources, pitch shift, time
stretch, reverb) goes through sox as usual. A test checks clips are the same with and without.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import numpy as np

_INFO_CACHE: dict[tuple[str, int, int, bool], object] = {}


def _is_noop_resample(tfm, input_array, sample_rate_in) -> bool:
    """True when ``tfm`` would only pass ``input_array`` through sox unchanged (same rate/channels)."""
    if input_array is None or sample_rate_in is None or getattr(tfm, "globals", None) is None:
        return False
    out = tfm.output_format
    arr = np.asarray(input_array)
    return (
        arr.ndim == 2
        and out.get("rate") == sample_rate_in
        and out.get("channels") == arr.shape[1]
        and out.get("bits") is None
        and out.get("encoding") is None
        and tfm.effects == ["rate", "-h", f"{float(sample_rate_in):f}"]
    )


@contextmanager
def scaper_fast_paths() -> Iterator[None]:
    """Within the block: no-op sox resampling skipped, ``soundfile.info`` cached."""
    import soundfile
    import soxbindings

    original_build_array = soxbindings.Transformer.build_array
    original_info = soundfile.info

    def build_array(self, input_filepath=None, input_array=None, sample_rate_in=None, extra_args=None):
        if input_filepath is None and extra_args is None and _is_noop_resample(self, input_array, sample_rate_in):
            return np.array(input_array, dtype=np.float64, copy=True)
        return original_build_array(self, input_filepath=input_filepath, input_array=input_array,
                                    sample_rate_in=sample_rate_in, extra_args=extra_args)

    def info(file, verbose=False):
        if not isinstance(file, (str, os.PathLike)):
            return original_info(file, verbose)
        st = os.stat(file)
        key = (os.fspath(file), st.st_size, st.st_mtime_ns, bool(verbose))
        hit = _INFO_CACHE.get(key)
        if hit is None:
            hit = _INFO_CACHE[key] = original_info(file, verbose)
        return hit

    soxbindings.Transformer.build_array = build_array
    soundfile.info = info
    try:
        yield
    finally:
        soxbindings.Transformer.build_array = original_build_array
        soundfile.info = original_info
