"""One phase's measurement: a codecarbon tracker around a span of work, its figures as a segment."""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping


from .tracker import component_sources, quiet_codecarbon, running_figures, tracker_kwargs


PHASES = ("training", "devtest", "evaluation")
ENERGY_JSON = "energy.json"
FORMAT_VERSION = 1
ACCUMULATE_BY_DEFAULT = {"training": True, "devtest": False, "evaluation": False}
TRACKING_MODES = ("machine", "process")


class EnergyWarning(UserWarning):
    """Energy tracking failed or was skipped; the run itself goes on."""


# (experiment folder, phase) pairs being tracked in this process: a nested tracker of the same pair
# (two EnergyCallbacks, track_energy inside track_energy) is a no-op instead of counting twice.
_ACTIVE: set[tuple[str, str]] = set()


# --------------------------------------------------------------------------- configuration
def energy_config(recipe_or_section: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``energy`` settings: recipe defaults <- ``recipe['energy']`` (or the section itself).

    Accepts a whole recipe, its ``energy`` section, or None (defaults). A checkpoint trained
    before the section existed gets the defaults.
    """
    from ..recipe.schema import DEFAULTS, RecipeError

    cfg = dict(DEFAULTS["energy"])
    if recipe_or_section:
        section = recipe_or_section["energy"] if "energy" in recipe_or_section else recipe_or_section
        cfg.update({k: v for k, v in (section or {}).items() if k in cfg})  # a recipe's other sections: ignored
    if cfg["tracking_mode"] not in TRACKING_MODES:
        raise RecipeError(f"'energy.tracking_mode' must be one of {TRACKING_MODES}, got {cfg['tracking_mode']!r}")
    if not cfg["measure_power_secs"] > 0:
        raise RecipeError(f"'energy.measure_power_secs' must be > 0 seconds, got {cfg['measure_power_secs']!r}")
    return cfg


def _is_global_zero() -> bool:
    try:
        from pytorch_lightning.utilities.rank_zero import rank_zero_only

        return int(getattr(rank_zero_only, "rank", 0) or 0) == 0
    except Exception:  # pragma: no cover
        return True


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now() -> str:
    return _iso(time.time())


def _warn(msg: str) -> None:
    warnings.warn(msg, EnergyWarning, stacklevel=3)


# --------------------------------------------------------------------------- one tracker
def _method(sources: Mapping[str, str]) -> str:
    """``"measured"`` if the CPU (and the GPU, when tracked) read power counters, else ``"estimated"``."""
    cpu = sources.get("cpu", "")
    gpu = sources.get("gpu", "measured")
    return "measured" if cpu.startswith("measured") and gpu.startswith("measured") else "estimated"


def _torch_hardware() -> dict[str, Any]:
    try:
        import torch

        out: dict[str, Any] = {"torch": torch.__version__}
        if torch.cuda.is_available():
            out["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return out
    except Exception:  # pragma: no cover
        return {}


def _make_tracker(phase: str, out_dir: Path, cfg: Mapping[str, Any], figures: Any = None):
    """A started :class:`OfflineEmissionsTracker` writing ``out_dir/<phase>.csv`` (may raise), which
    hands its figures to ``figures`` (a :func:`~dcase_fpd_plugin.energy.tracker.running_figures`
    handler; a new one by default) after each power reading and when it stops."""
    from codecarbon import OfflineEmissionsTracker

    quiet_codecarbon()
    figures = running_figures() if figures is None else figures
    out_dir.mkdir(parents=True, exist_ok=True)  # codecarbon needs it to exist
    # api_call_interval=1: codecarbon gives its output handlers the figures after every reading
    tracker = OfflineEmissionsTracker(output_dir=str(out_dir), output_file=f"{phase}.csv", experiment_name=phase,
                                      output_handlers=[figures], api_call_interval=1, **tracker_kwargs(cfg))
    tracker.start()
    if figures.latest is None:  # start() ends with a reading; codecarbon swallows its own exceptions
        try:
            tracker.stop()  # whatever it had started
        except Exception:
            pass
        raise RuntimeError("codecarbon's tracker did not start (an error inside codecarbon)")
    return tracker


@dataclass
class PhaseTracker:
    """Tracks one segment of one phase; :meth:`start`/:meth:`stop` never raise, they warn.

    ``stop`` returns the segment dict (see the module docstring) or None if tracking failed.
    """

    phase: str
    exp_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    _tracker: Any = None
    _figures: Any = None  # the tracker's output handler: its latest and final figures
    started: str | None = None  # ISO time (UTC) of the start
    started_unix: float = 0.0  # the same, Unix seconds
    _key: tuple[str, str] | None = None
    _snapshot_failed: bool = False

    def __post_init__(self) -> None:
        self.exp_dir = Path(self.exp_dir)
        self.config = energy_config(self.config)

    @property
    def out_dir(self) -> Path:
        return self.exp_dir / self.config["output_subdir"]

    @property
    def running(self) -> bool:
        return self._tracker is not None

    @property
    def already_tracked(self) -> bool:
        """This phase of this experiment is being tracked by another tracker of this process."""
        return (str(self.exp_dir.resolve()), self.phase) in _ACTIVE

    def start(self) -> bool:
        """Start codecarbon; False if it cannot (with an :class:`EnergyWarning`) or if this
        phase of this experiment is already being tracked in this process (silently)."""
        self._tracker = None
        key = (str(self.exp_dir.resolve()), self.phase)
        if self.already_tracked:
            return False
        try:
            self._figures = running_figures()
            self._tracker = _make_tracker(self.phase, self.out_dir, self.config, self._figures)
        except ImportError as exc:
            _warn(f"energy tracking of phase {self.phase!r} disabled: codecarbon cannot be imported "
                  f"({exc}; pip install 'codecarbon>=3'); the run goes on without its kWh figure")
            return False
        except Exception as exc:  # energy is optional, the run is not
            _warn(f"energy tracking of phase {self.phase!r} disabled: codecarbon could not start "
                  f"({type(exc).__name__}: {exc}); the run goes on without its kWh figure")
            return False
        self.started_unix = time.time()
        self.started = _iso(self.started_unix)
        self._key = key
        _ACTIVE.add(key)
        return True

    def stop(self, interrupted: bool = False, work: Mapping[str, int] | None = None) -> dict[str, Any] | None:
        """Stop codecarbon and return this segment's figures (None, with a warning, on failure);
        ``work``: what the segment did (see the module docstring), stored when given."""
        tracker, self._tracker = self._tracker, None
        if tracker is None:
            return None
        _ACTIVE.discard(self._key)
        try:
            tracker.stop()
            data = self._figures.final
            if data is None:
                raise RuntimeError("codecarbon returned no figures (an error inside codecarbon)")
            segment = self._segment(data, interrupted, float(data.duration))
            if work:
                segment["work"] = {k: int(v) for k, v in work.items()}
            return segment
        except Exception as exc:
            _warn(f"energy tracking of phase {self.phase!r} failed when stopping codecarbon "
                  f"({type(exc).__name__}: {exc}); no kWh figure recorded for it")
            return None

    def _latest(self) -> Any:
        """codecarbon's figures at its latest power reading (None when not running or before it)."""
        return None if self._tracker is None or self._figures is None else self._figures.latest

    def measured_s(self) -> float:
        """Seconds from the start to codecarbon's latest power reading (0 when not running): the span
        that the figures of :meth:`snapshot` cover."""
        latest = self._latest()
        return 0.0 if latest is None else max(0.0, float(latest.duration))

    def snapshot(self) -> dict[str, Any] | None:
        """The figures measured so far, without stopping: a segment (``interrupted: true``) whose
        ``duration_s`` ends at codecarbon's latest power reading, which its kWh cover; None when
        nothing was measured yet or codecarbon cannot say (a warning the first time)."""
        latest = self._latest()  # handed to our output handler by codecarbon after each reading
        if latest is None:
            return None
        try:
            measured_s = max(0.0, float(latest.duration))
            if measured_s <= 0.0:
                return None
            return self._segment(latest, True, measured_s)
        except Exception as exc:
            if not self._snapshot_failed:
                self._snapshot_failed = True
                _warn(f"energy of phase {self.phase!r}: codecarbon's running figures cannot be read "
                      f"({type(exc).__name__}: {exc}); a killed run's energy will be recorded as unmeasured")
            return None

    def _segment(self, data: Any, interrupted: bool, duration_s: float) -> dict[str, Any]:
        """The segment dict (module docstring) of codecarbon's ``EmissionsData``."""
        sources = component_sources(self.config)
        energy = float(data.energy_consumed)
        if not math.isfinite(energy) or energy < 0:
            raise RuntimeError(f"codecarbon reported an invalid energy {energy!r} kWh")
        return {
            "started": self.started,
            "duration_s": duration_s,
            "energy_kwh": energy,
            "cpu_kwh": float(data.cpu_energy),
            "gpu_kwh": float(data.gpu_energy),
            "ram_kwh": float(data.ram_energy),
            "emissions_kg_co2eq": float(data.emissions),
            "method": _method(sources),
            "sources": sources,
            "tracking_mode": data.tracking_mode,
            "country_iso_code": data.country_iso_code,
            "hardware": {
                "cpu_model": data.cpu_model,
                "cpu_count": data.cpu_count,
                "ram_total_gib": round(float(data.ram_total_size), 2),  # codecarbon's "GB" = 2**30 bytes
                "gpu_model": data.gpu_model or None,
                "gpu_count": data.gpu_count,
                "os": data.os,
                **_torch_hardware(),
            },
            "codecarbon_version": data.codecarbon_version,
            "csv": f"{self.config['output_subdir']}/{self.phase}.csv",
            "interrupted": bool(interrupted),
        }
