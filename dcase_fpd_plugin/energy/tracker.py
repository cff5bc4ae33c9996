"""codecarbon's trackers, built in one place: their settings, their log silencing, and the hardware
probe that lets a run's first training step not wait for codecarbon.

This module imports neither codecarbon nor Lightning at import time, so the command line can start
the probe before the ~6 s of ``import pytorch_lightning`` (see :func:`start_hardware_probe`).
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
import threading
from typing import Any, Mapping

_probe: threading.Thread | None = None  # the process's hardware probe, once started
_probe_lock = threading.Lock()


def quiet_codecarbon() -> None:
    """The one place that silences codecarbon's INFO/WARNING log lines (its real errors still show).

    codecarbon sets its logger's level when imported and again in every tracker's ``__init__``
    (from ``log_level``); we import it, then set ERROR, and pass ``log_level="error"`` to trackers.
    """
    logging.getLogger("codecarbon").setLevel(logging.ERROR)


def tracker_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What every tracker is built with, from the recipe's ``energy`` section (resolved). The fields
    codecarbon keys its per-process hardware plan on are the same for the probe and the real
    trackers, so the probe's detection is reused."""
    return dict(country_iso_code=cfg["country_iso_code"], project_name="dcase-fpd",
                measure_power_secs=float(cfg["measure_power_secs"]), tracking_mode=cfg["tracking_mode"],
                log_level="error", allow_multiple_runs=True)


def start_hardware_probe(cfg: Mapping[str, Any]) -> threading.Thread:
    """Run codecarbon's hardware detection (RAM, the CPU model through py-cpuinfo's subprocess,
    GPUs: ~1.3 s on a 2-core CPU) in a daemon thread, once per process, through a tracker that is
    never started and writes nothing.

    codecarbon (a version with ``core.hardware_cache``, as 3.3.2) keeps the outcome for the process,
    so the tracker that starts at ``on_fit_start`` finds it instead of detecting again while the
    first training step waits (if the probe is still detecting then, whichever of the two holds
    codecarbon's lock detects and the other reuses it). ``cfg``: the recipe's resolved ``energy``
    section. Any failure is left to that tracker, which reports it; a codecarbon without that cache
    makes the probe a no-op."""
    global _probe
    with _probe_lock:
        if _probe is not None:
            return _probe
        kwargs = tracker_kwargs(cfg)

        def probe() -> None:
            try:
                # codecarbon keeps the detection for the process only since its hardware cache:
                # without it the probe would detect for nothing, so it does nothing
                if importlib.util.find_spec("codecarbon.core.hardware_cache") is None:
                    return
                from codecarbon import OfflineEmissionsTracker

                quiet_codecarbon()
                tracker = OfflineEmissionsTracker(output_dir=tempfile.gettempdir(), output_methods=[],
                                                  experiment_name="hardware-probe", **kwargs)
                detect = getattr(tracker, "get_detected_hardware", None)  # codecarbon >= 3
                if detect is not None:
                    detect()
            except Exception:  # the real tracker meets the same failure and warns
                pass

        _probe = threading.Thread(target=probe, name="codecarbon-hardware-probe", daemon=True)
        _probe.start()
        return _probe
