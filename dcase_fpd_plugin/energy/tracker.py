"""codecarbon's trackers, built in one place: their settings, their log silencing, the output handler
that hands us a running tracker's figures, what each component's power is read from, and the
hardware probe that lets a run's first training step not wait for codecarbon.

codecarbon is used through its public names only: the trackers' constructor arguments and methods
(``start``, ``stop``, ``get_detected_hardware``), an output handler (``BaseOutput``, whose
``live_out`` / ``out`` / ``exit`` codecarbon calls with its ``EmissionsData``), and the tracking
methods its ``ResourceTracker`` chose. No attribute whose name starts with ``_`` is read
(``tests/energy/test_energy.py::test_no_private_attribute_of_codecarbon_is_read``).

This module imports neither codecarbon nor Lightning at import time, so the command line can start
the probe before the ~6 s of ``import pytorch_lightning`` (see :func:`start_hardware_probe`).
"""

from __future__ import annotations

import importlib.util
import logging
import re
import tempfile
import threading
from typing import Any, Mapping

_probe: threading.Thread | None = None  # the process's hardware probe, once started
_probe_lock = threading.Lock()
_figures_class: type | None = None  # RunningFigures, defined when codecarbon is first needed
_sources: dict[tuple, dict[str, str]] = {}  # component_sources per tracker settings, for the process
_sources_lock = threading.Lock()


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


def running_figures() -> Any:
    """A new output handler for one tracker (give it as ``output_handlers=[handler]``, with
    ``api_call_interval=1``), a subclass of codecarbon's ``BaseOutput``:

    * ``latest``: the ``EmissionsData`` of the tracker's latest power reading (None before the first).
      codecarbon calls ``live_out`` after a reading once every ``api_call_interval`` readings, so
      after each of them with 1, the first at the end of ``start()``; its ``duration`` is the time
      from the start to that reading, and its kWh cover exactly that span.
    * ``final``: the figures of ``stop()`` (``out``), kept once codecarbon has written them through
      every handler (``exit`` follows the ``out`` of all of them): None if stopping failed, as
      codecarbon swallows its own exceptions.
    """
    global _figures_class
    if _figures_class is None:
        from codecarbon.output_methods.base_output import BaseOutput

        class RunningFigures(BaseOutput):
            def __init__(self) -> None:
                self.latest: Any = None
                self.stopping: Any = None
                self.final: Any = None

            def live_out(self, total: Any, delta: Any) -> None:  # a reading of the running tracker
                self.latest = total  # a new EmissionsData each time, never changed afterwards

            def out(self, total: Any, delta: Any) -> None:  # stop() (or flush()): the figures so far
                self.stopping = total

            def exit(self) -> None:  # stop(), once every handler has had its out()
                self.final = self.stopping

        _figures_class = RunningFigures
    return _figures_class()


# codecarbon's ResourceTracker names the method it chose per component (what it logs as its
# "tracking methods"): what our segments call each component's source. An unknown name is said as
# such, and is never counted as measured.
_CONSTANT_CPU = "estimated (constant power model, mode constant)"
_CPU_SOURCES = {"RAPL": "measured (RAPL)", "Power Gadget": "measured (Intel Power Gadget)",
                "Windows EMI": "measured (Windows EMI)", "PowerMetrics": "measured (Apple powermetrics)",
                "raspberry": "measured (Raspberry Pi PMIC)", "cpu_load": "estimated (TDP x CPU load model)",
                "TDP constant": _CONSTANT_CPU, "global constant": _CONSTANT_CPU,
                "User Input TDP constant": _CONSTANT_CPU}
_GPU_SOURCES = {"pynvml": "measured (NVML / AMD SMI)", "amdsmi": "measured (NVML / AMD SMI)",
                "PowerMetrics": "measured (Apple powermetrics)"}


def sources_of(cpu: str, gpu: str, ram: str) -> dict[str, str]:
    """``{"cpu": "measured (RAPL)", "ram": "estimated (...)", ...}`` of the tracking methods that
    codecarbon's ``ResourceTracker`` chose (its ``cpu_tracker``, ``gpu_tracker``, ``ram_tracker``);
    no ``gpu`` when it tracks none; in codecarbon's order of its hardware (RAM, CPU, GPU)."""
    forced = re.fullmatch(r"User specified constant: (.*) Watts", ram)
    if cpu == "raspberry":  # a Pi whose PMIC codecarbon reads: it reads the RAM rails there too
        sources = {"ram": "measured (Raspberry Pi PMIC)"}
    elif forced:
        sources = {"ram": f"estimated (forced {forced.group(1)} W)"}
    elif ram == "RAM power estimation model":
        sources = {"ram": "estimated (RAM power model)"}
    else:
        sources = {"ram": f"unknown (codecarbon's RAM tracking {ram!r})"}
    sources["cpu"] = _CPU_SOURCES.get(cpu, f"unknown (codecarbon's CPU tracking {cpu!r})")
    if gpu != "Unspecified":  # codecarbon's name when no GPU is tracked
        sources["gpu"] = _GPU_SOURCES.get(gpu, f"unknown (codecarbon's GPU tracking {gpu!r})")
    return sources


def _detected(cfg: Mapping[str, Any]) -> Any:
    """A tracker of :func:`tracker_kwargs` of ``cfg``, never started, that writes nothing, whose
    hardware codecarbon has detected (or, with its per-process hardware cache, taken from the plan
    of an earlier detection with the same settings: the plan every tracker of these settings uses)."""
    from codecarbon import OfflineEmissionsTracker

    quiet_codecarbon()
    tracker = OfflineEmissionsTracker(output_dir=tempfile.gettempdir(), output_methods=[],
                                      experiment_name="hardware-probe", **tracker_kwargs(cfg))
    tracker.get_detected_hardware()
    return tracker


def component_sources(cfg: Mapping[str, Any], detected: Any = None) -> dict[str, str]:
    """What codecarbon reads each component's power from, for trackers built with
    :func:`tracker_kwargs` of ``cfg`` (see :func:`sources_of`); ``{}`` when it cannot be told.

    Asked once per process and settings, of ``detected`` (a :func:`_detected` tracker, made here if
    None): a ``ResourceTracker`` on it sets its hardware up again, from codecarbon's hardware cache
    with codecarbon 3.3 (a detection without it), and says which methods it chose."""
    key = tuple(sorted(tracker_kwargs(cfg).items()))
    with _sources_lock:
        if key not in _sources:
            try:
                from codecarbon.core.resource_tracker import ResourceTracker

                resources = ResourceTracker(_detected(cfg) if detected is None else detected)
                resources.set_CPU_GPU_ram_tracking()
                _sources[key] = sources_of(str(resources.cpu_tracker), str(resources.gpu_tracker),
                                           str(resources.ram_tracker))
            except Exception:  # asked again next time; the figures themselves do not depend on it
                return {}
        return dict(_sources[key])


def start_hardware_probe(cfg: Mapping[str, Any]) -> threading.Thread:
    """Run codecarbon's hardware detection (RAM, the CPU model through py-cpuinfo's subprocess,
    GPUs: ~1.3 s on a 2-core CPU) in a daemon thread, once per process, through a tracker that is
    never started and writes nothing.

    codecarbon (a version with ``core.hardware_cache``, as 3.3.2) keeps the outcome for the process,
    so the tracker that starts at ``on_fit_start`` finds it instead of detecting again while the
    first training step waits (if the probe is still detecting then, whichever of the two holds
    codecarbon's lock detects and the other reuses it); then it asks which methods codecarbon chose
    (:func:`component_sources`), for the segments. ``cfg``: the recipe's resolved ``energy`` section. Any
    failure is left to that tracker, which reports it; a codecarbon without that cache makes the
    probe a no-op."""
    global _probe
    with _probe_lock:
        if _probe is not None:
            return _probe
        cfg = dict(cfg)

        def probe() -> None:
            try:
                # codecarbon keeps the detection for the process only since its hardware cache:
                # without it the probe would detect for nothing, so it does nothing
                if importlib.util.find_spec("codecarbon.core.hardware_cache") is None:
                    return
                component_sources(cfg, _detected(cfg))  # and keeps what it reads each power from
            except Exception:  # the real tracker meets the same failure and warns
                pass

        _probe = threading.Thread(target=probe, name="codecarbon-hardware-probe", daemon=True)
        _probe.start()
        return _probe
