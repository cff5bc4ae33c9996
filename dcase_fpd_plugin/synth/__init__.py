"""Scaper-based synthetic soundscapes in the DESED format, matched to a validation set.

    soundbank.py   scan / validate / split a DESED-layout bank
    target.py      measure a strong TSV (class shares, events per clip, co-occurrence, durations)
    plan.py        which classes and how many events each clip holds
    placement.py   event-time policy: the concrete scaper events of one clip
    postprocess.py DESED-like cleaning of strong labels
    generate.py    scaper rendering, parallel workers, atomic writes, resume; the Python API
    report.py      report.json / report.png, target vs achieved
    soft.py        soft labels in MAESTRO's format: the share of each segment an event covers
    bench.py       the DESED-size bench (``dcase-fpd bench build``), with an optional soft-labelled source
    spec.py        generation settings (synth/*.yaml)
    fastpaths.py   shortcuts around work scaper repeats (no-op sox resampling, soundfile.info)
    toybank.py     a tiny bank of tones and noise for tests
    command.py     the ``dcase-fpd synth`` subcommand

Owns the synthetic training set. May import ``data`` (TSVs, the bench's feature checks) and the root modules; never ``training`` or ``models``: synth never trains.
"""

from .generate import SynthError, SynthResult, generate_soundscapes
from .soundbank import Soundbank, SoundbankError, scan_soundbank, split_soundbank
from .spec import SpecError, SynthSpec, load_spec
from .target import Target, measure_target, uniform_target

__all__ = [
    "generate_soundscapes",
    "split_soundbank",
    "scan_soundbank",
    "measure_target",
    "uniform_target",
    "load_spec",
    "Soundbank",
    "SynthSpec",
    "SynthResult",
    "Target",
    "SoundbankError",
    "SpecError",
    "SynthError",
]
