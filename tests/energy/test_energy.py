"""Energy tracking with codecarbon: energy.json per phase, segments, failures that only warn."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch import nn

from dcase_fpd_plugin.energy import callback as energy_callback
from dcase_fpd_plugin.energy import phase as energy_phase
from dcase_fpd_plugin.energy import record as energy_record
from dcase_fpd_plugin.energy.callback import EnergyCallback, track_energy
from dcase_fpd_plugin.energy.phase import EnergyWarning, energy_config
from dcase_fpd_plugin.energy.record import format_kwh, read_energy, record_segment
from dcase_fpd_plugin.recipe.schema import RecipeError
from dcase_fpd_plugin.recipe.loading import load_recipe

FAST = {"measure_power_secs": 1.0}


def has_power_counters() -> bool:
    """RAPL readable or a CUDA GPU (NVML): then codecarbon may measure instead of estimate."""
    rapl = Path("/sys/class/powercap/intel-rapl")
    try:
        readable = any(p.read_text() for p in rapl.glob("intel-rapl:*/energy_uj"))
    except OSError:
        readable = False
    return readable or torch.cuda.is_available()


def fake_segment(kwh: float, method: str = "estimated") -> dict:
    return {"started": "x", "duration_s": 2.0, "energy_kwh": kwh, "method": method, "interrupted": False}


# --------------------------------------------------------------------------- track_energy
def test_track_energy_writes_json_and_csv(tmp_path):
    with track_energy("devtest", tmp_path, FAST) as m:
        sum(range(200_000))
    data = read_energy(tmp_path)
    assert data is not None and data["unit"] == "kWh"
    ph = data["phases"]["devtest"]
    assert ph["n_segments"] == 1 and ph["energy_kwh"] >= 0.0 and ph["duration_s"] > 0.0
    seg = ph["segments"][0]
    assert m.segment == seg
    assert seg["method"] in ("estimated", "measured")
    assert seg["energy_kwh"] == pytest.approx(seg["cpu_kwh"] + seg["gpu_kwh"] + seg["ram_kwh"], rel=1e-6, abs=1e-12)
    assert set(seg["sources"]) >= {"cpu", "ram"} and seg["country_iso_code"] == "FRA"
    assert seg["hardware"]["cpu_count"] >= 1 and seg["tracking_mode"] == "machine"
    if not has_power_counters():  # these machines: no RAPL, no GPU -> codecarbon's power model
        assert seg["method"] == ph["method"] == data["method"] == "estimated"
        assert seg["sources"]["cpu"].startswith("estimated")
    assert (tmp_path / "energy" / "devtest.csv").is_file()
    assert data["total_kwh"] == pytest.approx(ph["energy_kwh"])


def test_training_segments_accumulate_and_inference_replaces(tmp_path):
    for _ in range(2):
        with track_energy("training", tmp_path, FAST):
            pass
    for _ in range(2):
        with track_energy("devtest", tmp_path, FAST):
            pass
    data = read_energy(tmp_path)
    tr, dt = data["phases"]["training"], data["phases"]["devtest"]
    assert tr["n_segments"] == 2 and len(tr["segments"]) == 2
    assert tr["energy_kwh"] == pytest.approx(sum(s["energy_kwh"] for s in tr["segments"]))
    assert tr["duration_s"] == pytest.approx(sum(s["duration_s"] for s in tr["segments"]))
    assert dt["n_segments"] == 1  # a repeated devtest run replaces the previous figure
    assert data["total_kwh"] == pytest.approx(tr["energy_kwh"] + dt["energy_kwh"])
    assert list(data["phases"]) == ["training", "devtest"]


def test_nested_trackers_count_once(tmp_path):
    with track_energy("training", tmp_path, FAST) as outer:
        with track_energy("training", tmp_path, FAST) as inner:
            pass
        with track_energy("devtest", tmp_path, FAST):  # another phase is tracked
            pass
    assert inner.segment is None and outer.segment is not None
    data = read_energy(tmp_path)
    assert data["phases"]["training"]["n_segments"] == 1 and data["phases"]["devtest"]["n_segments"] == 1


def test_record_segment_merges_phases(tmp_path):
    record_segment(tmp_path, "training", fake_segment(1.0, "measured"))
    record_segment(tmp_path, "evaluation", fake_segment(0.5, "measured"))
    record_segment(tmp_path, "training", fake_segment(2.0, "measured"))
    data = json.loads((tmp_path / "energy.json").read_text())
    assert data["phases"]["training"]["energy_kwh"] == 3.0
    assert data["total_kwh"] == 3.5 and data["method"] == "measured"
    record_segment(tmp_path, "devtest", fake_segment(0.1, "estimated"))
    data = read_energy(tmp_path)
    assert data["method"] == "estimated"  # one estimated phase makes the total estimated
    assert list(data["phases"]) == ["training", "devtest", "evaluation"]
    assert not list(tmp_path.glob(".energy.json.*"))  # atomic write left no temporary file


def test_format_kwh_always_says_how():
    assert format_kwh(0.00012, "estimated") == "0.000120 kWh (estimated)"
    assert "measured" in format_kwh(1.0, "measured")
    assert format_kwh(None, None) == "not measured"


def test_interrupted_block(tmp_path):
    with pytest.raises(KeyError):
        with track_energy("training", tmp_path, FAST):
            raise KeyError("boom")
    seg = read_energy(tmp_path)["phases"]["training"]["segments"][0]
    assert seg["interrupted"] is True
    with pytest.raises(KeyError):
        with track_energy("devtest", tmp_path, FAST):
            raise KeyError("boom")
    assert "devtest" not in read_energy(tmp_path)["phases"]  # a failed inference is not a figure


def test_disabled_is_a_no_op(tmp_path):
    with track_energy("training", tmp_path, {"enabled": False}) as m:
        pass
    assert m.segment is None and not (tmp_path / "energy.json").exists() and not (tmp_path / "energy").exists()


# --------------------------------------------------------------------------- failures only warn
def test_tracker_that_fails_to_start_warns_and_run_goes_on(tmp_path, monkeypatch):
    import codecarbon

    class Broken:
        def __init__(self, *a, **k):
            raise RuntimeError("no power for you")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", Broken)
    ran = []
    with pytest.warns(EnergyWarning, match="no power for you"):
        with track_energy("training", tmp_path, FAST) as m:
            ran.append(1)
    assert ran == [1] and m.segment is None and read_energy(tmp_path) is None


def test_tracker_that_fails_to_stop_warns(tmp_path, monkeypatch):
    import codecarbon

    class StopFails:
        def __init__(self, *a, output_handlers=(), **k):
            self.handlers = list(output_handlers)

        def start(self):  # a started tracker hands its first reading to its output handlers
            for handler in self.handlers:
                handler.live_out(SimpleNamespace(duration=0.0), None)

        def stop(self):
            raise OSError("counter vanished")

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", StopFails)
    with pytest.warns(EnergyWarning, match="counter vanished"):
        with track_energy("devtest", tmp_path, FAST):
            pass
    assert read_energy(tmp_path) is None


def test_tracker_whose_start_failed_inside_codecarbon_warns(tmp_path, monkeypatch):
    import codecarbon

    stopped = []

    class SilentFailure:  # codecarbon's start() swallows its own exceptions: it hands out no reading
        def __init__(self, *a, output_handlers=(), **k):
            pass

        def start(self):
            pass

        def stop(self):
            stopped.append(1)

    monkeypatch.setattr(codecarbon, "OfflineEmissionsTracker", SilentFailure)
    with pytest.warns(EnergyWarning, match="did not start"):
        with track_energy("devtest", tmp_path, FAST) as m:
            pass
    assert m.segment is None and stopped == [1] and read_energy(tmp_path) is None  # its threads stopped


def test_codecarbon_missing_warns(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "codecarbon", None)  # import codecarbon -> ImportError
    with pytest.warns(EnergyWarning, match="codecarbon cannot be imported"):
        with track_energy("evaluation", tmp_path, FAST):
            pass
    assert read_energy(tmp_path) is None


def test_unreadable_energy_json(tmp_path):
    (tmp_path / "energy.json").write_text("{not json")
    with pytest.raises(ValueError, match="energy.json"):
        read_energy(tmp_path)
    with pytest.warns(EnergyWarning, match="energy.json"):
        record_segment(tmp_path, "training", fake_segment(1.0))
    assert read_energy(tmp_path)["phases"]["training"]["energy_kwh"] == 1.0


# --------------------------------------------------------------------------- recipe keys
def test_recipe_energy_section():
    r = load_recipe(None, ["energy.country_iso_code=DEU", "energy.measure_power_secs=5"])
    cfg = energy_config(r)
    assert cfg["country_iso_code"] == "DEU" and cfg["measure_power_secs"] == 5.0 and cfg["enabled"] is True
    assert cfg["output_subdir"] == "energy"
    with pytest.raises(RecipeError, match="energy.contry"):
        load_recipe(None, ["energy.contry_iso_code=DEU"])
    with pytest.raises(RecipeError, match="tracking_mode"):
        energy_config({"tracking_mode": "galaxy"})
    assert energy_config({"data": {}})["country_iso_code"] == "FRA"  # an old recipe without the section


# --------------------------------------------------------------------------- the Lightning callback
class Tiny(pl.LightningModule):
    def __init__(self, fail_at_epoch: int | None = None):
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.fail_at_epoch = fail_at_epoch

    def training_step(self, batch, batch_idx):
        if self.current_epoch == self.fail_at_epoch:
            raise RuntimeError("crash")
        (x,) = batch
        return self.lin(x).pow(2).mean()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4)), batch_size=4)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(exp: Path, epochs: int, ckpt=None, cb=None, module=None, extra=()):
    cb = cb or EnergyCallback(exp, FAST)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu",
                         callbacks=[cb, *extra, ModelCheckpoint(dirpath=exp / "ckpt", save_last=True)],
                         default_root_dir=exp)
    trainer.fit(module or Tiny(), ckpt_path=ckpt)
    return cb


def test_callback_training_phase_fresh_resumed_and_crashed(tmp_path):
    exp = tmp_path / "exp"
    cb = _fit(exp, 1)
    data = read_energy(exp)
    assert list(data["phases"]) == ["training"] and data["phases"]["training"]["n_segments"] == 1
    assert cb.segments[0] == data["phases"]["training"]["segments"][0]
    assert (exp / "energy" / "training.csv").is_file()
    # resumed from the checkpoint: a second segment, added to the first
    assert data["phases"]["training"]["work"] == {"clips": 8, "epochs": 1, "steps": 2}  # 8 clips, batches of 4
    _fit(exp, 2, ckpt=str(exp / "ckpt" / "last.ckpt"))
    tr = read_energy(exp)["phases"]["training"]
    assert tr["n_segments"] == 2 and tr["energy_kwh"] == pytest.approx(sum(s["energy_kwh"] for s in tr["segments"]))
    assert tr["segments"][1]["work"] == {"clips": 8, "epochs": 1, "steps": 2}  # only what the resumed fit did
    assert tr["work"] == {"clips": 16, "epochs": 2, "steps": 4}
    # a crash inside fit still records its (interrupted) segment
    with pytest.raises(RuntimeError, match="crash"):
        _fit(exp, 3, ckpt=str(exp / "ckpt" / "last.ckpt"), module=Tiny(fail_at_epoch=2))
    tr = read_energy(exp)["phases"]["training"]
    assert tr["n_segments"] == 3 and tr["segments"][-1]["interrupted"] is True
    assert tr["segments"][-1]["work"] == {"clips": 0, "epochs": 0, "steps": 0}  # failed in its first step
    # a fresh fit (nothing to resume) starts a new energy.json; a second callback counts nothing
    record_segment(exp, "devtest", fake_segment(1.0))
    twin = EnergyCallback(exp, FAST)
    _fit(exp, 1, extra=[twin])
    data = read_energy(exp)
    assert list(data["phases"]) == ["training"] and data["phases"]["training"]["n_segments"] == 1
    assert twin.segments == []


def test_work_of_inference_blocks_and_of_phases(tmp_path):
    from dcase_fpd_plugin.energy.callback import batch_size_of

    with track_energy("devtest", tmp_path, FAST) as m:
        m.work["clips"] = 12
    assert read_energy(tmp_path)["phases"]["devtest"]["work"] == {"clips": 12}
    # a phase sums its segments' work only when every segment says it
    record_segment(tmp_path, "evaluation", {**fake_segment(1.0), "work": {"clips": 5}}, accumulate=True)
    record_segment(tmp_path, "evaluation", fake_segment(1.0), accumulate=True)
    assert "work" not in read_energy(tmp_path)["phases"]["evaluation"]
    assert batch_size_of(torch.zeros(3, 2)) == 3 and batch_size_of((torch.zeros(5, 1),)) == 5
    assert batch_size_of({"x": torch.zeros(2)}) == 2 and batch_size_of(object()) is None


def test_callback_with_failing_tracker_lets_training_finish(tmp_path, monkeypatch):
    def broken(*a, **k):
        raise RuntimeError("codecarbon exploded")

    monkeypatch.setattr(energy_phase, "_make_tracker", broken)
    with pytest.warns(EnergyWarning, match="codecarbon exploded"):
        cb = _fit(tmp_path, 1)
    assert cb.segments == [] and read_energy(tmp_path) is None
    assert (tmp_path / "ckpt" / "last.ckpt").is_file()  # the run itself went on


def test_callback_rejects_unknown_stage(tmp_path):
    with pytest.raises(ValueError, match="validate"):
        EnergyCallback(tmp_path, phases={"validate": "x"})


# --------------------------------------------------------------------------- a killed run (#15 row 15)
def _abandon(tracker):
    """What a SIGKILL leaves: codecarbon's threads end with the process, nothing is recorded."""
    tracker._tracker.stop()
    energy_phase._ACTIVE.discard(tracker._key)


def test_killed_segment_is_recovered_once_with_its_unmeasured_tail(tmp_path):
    tracker = energy_phase.PhaseTracker("training", tmp_path, FAST)
    assert tracker.start()
    sum(range(3_000_000))
    import time

    time.sleep(1.3)  # codecarbon reads power every second (FAST)
    live = energy_record.live_record_path(tmp_path, "training", FAST)
    energy_record.write_live_record(live, tracker, "seg-1", {"clips": 96, "epochs": 0, "steps": 2})
    _abandon(tracker)
    record = json.loads(live.read_text())
    saved = live.read_text()
    resumed = record["measured_until_unix"] + 30.0
    found = energy_record.recover_killed_segment(tmp_path, "training", FAST, resumed_unix=resumed,
                                          alive_unix=record["measured_until_unix"] + 4.0)
    assert not live.exists()
    seg, span = found["segment"], found["unmeasured"]
    assert seg["recovered"] == "killed" and seg["interrupted"] is True and seg["energy_kwh"] > 0
    assert seg["work"] == {"clips": 96, "epochs": 0, "steps": 2}  # so the phase can still be normalised
    assert seg["duration_s"] >= 1.0 and seg["energy_kwh"] == pytest.approx(seg["cpu_kwh"] + seg["gpu_kwh"] + seg["ram_kwh"])
    assert span["duration_s"] == pytest.approx(30.0) and span["ran_at_least_s"] == pytest.approx(4.0)
    tr = read_energy(tmp_path)["phases"]["training"]
    assert tr["segments"] == [seg] and tr["energy_kwh"] == pytest.approx(seg["energy_kwh"])
    assert tr["unmeasured"] == [span] and tr["unmeasured_s"] == pytest.approx(30.0)
    assert read_energy(tmp_path)["unmeasured_s"] == pytest.approx(30.0)
    # a resume killed after recording but before removing the record: not counted twice
    live.write_text(saved)
    assert energy_record.recover_killed_segment(tmp_path, "training", FAST) is None and not live.exists()
    assert read_energy(tmp_path)["phases"]["training"]["n_segments"] == 1
    # the next (resumed) segment adds to the recovered one; the unmeasured span stays
    with track_energy("training", tmp_path, FAST):
        pass
    tr = read_energy(tmp_path)["phases"]["training"]
    assert tr["n_segments"] == 2 and tr["unmeasured_s"] == pytest.approx(30.0)
    assert "work" not in tr  # the block counted nothing: no common work to sum


def test_killed_before_any_reading_is_recorded_as_unmeasured(tmp_path):
    from dcase_fpd_plugin.report.submission import _energy_section, format_report

    tracker = energy_phase.PhaseTracker("training", tmp_path, FAST)
    assert tracker.start()
    tracker.snapshot = lambda: None  # nothing measured yet
    live = energy_record.live_record_path(tmp_path, "training", FAST)
    energy_record.write_live_record(live, tracker, "seg-0")
    _abandon(tracker)
    started = json.loads(live.read_text())["started_unix"]
    found = energy_record.recover_killed_segment(tmp_path, "training", FAST, resumed_unix=started + 12.5)
    assert found["segment"] is None and found["unmeasured"]["duration_s"] == pytest.approx(12.5)
    data = read_energy(tmp_path)
    tr = data["phases"]["training"]
    assert tr["energy_kwh"] is None and tr["method"] == "unmeasured" and tr["n_segments"] == 0
    assert tr["unmeasured_s"] == pytest.approx(12.5)
    notes: list = []
    section, _ = _energy_section(tmp_path, notes)
    assert section["phases"]["training"]["kwh"] is None and section["unmeasured_s"] == pytest.approx(12.5)
    assert any("12.5 s unmeasured" in n and "lower bound" in n for n in notes)
    fig = {"exp_dir": str(tmp_path), "net": "x", "model_source": "x", "energy": section,
           "macs": {"input_shape": [1], "counted": 0, "recurrent": 0}, "parameters": 1, "macs_per_10s": 1,
           "hardware": {"source": "x"}, "notes": notes}
    report = format_report(fig).splitlines()
    line = next(ln for ln in report if ln.strip().startswith("training"))
    assert "not measured" in line and "0:00:12" in line
    total = next(ln for ln in report if ln.strip().startswith("total"))
    assert "not measured" in total and "12.5 s ran unmeasured" in total


def test_callback_keeps_a_live_record_during_fit_only(tmp_path):
    exp = tmp_path / "exp"
    seen = []

    class Probe(pl.Callback):
        def on_train_end(self, trainer, pl_module):
            live = energy_record.live_record_path(exp, "training", FAST)
            seen.append(json.loads(live.read_text()) if live.is_file() else None)

    _fit(exp, 2, extra=[Probe()])
    assert seen[0] is not None and seen[0]["phase"] == "training" and seen[0]["pid"] > 0
    assert not energy_record.live_record_path(exp, "training", FAST).exists()  # stopped: recorded, record removed
    tr = read_energy(exp)["phases"]["training"]
    assert tr["n_segments"] == 1 and tr["unmeasured"] == [] and tr["unmeasured_s"] == 0.0
    # a stale record (a killed run) is recovered by a resumed fit and dropped by a fresh one
    stale = {"format": 1, "phase": "training", "id": "killed", "started_unix": 0.0, "measured_until_unix": 100.0,
             "measured_until": "x", "segment": None}
    live = energy_record.live_record_path(exp, "training", FAST)
    live.write_text(json.dumps(stale))
    cb = _fit(exp, 3, ckpt=str(exp / "ckpt" / "last.ckpt"))
    assert cb.recovered and cb.recovered[0]["unmeasured"]["id"] == "killed" and not live.exists()
    tr = read_energy(exp)["phases"]["training"]
    assert tr["n_segments"] == 2 and [s["id"] for s in tr["unmeasured"]] == ["killed"]
    live.write_text(json.dumps(stale))
    _fit(exp, 1)
    assert not live.exists() and read_energy(exp)["phases"]["training"]["unmeasured"] == []


def test_live_record_is_rewritten_on_training_batches(tmp_path, monkeypatch):
    """The live record must follow training (batch and epoch ends), not only the fit's start: a run
    killed mid-training would otherwise leave nothing measured behind. Work is still counted."""
    import itertools
    import time as real_time

    ticks = itertools.count(0.0, 1000.0)  # every beat is past measure_power_secs

    class Clock:
        def __getattr__(self, name):
            return getattr(real_time, name)

        @staticmethod
        def monotonic():
            return next(ticks)

    writes = []
    original = energy_record.write_live_record
    monkeypatch.setattr(energy_callback, "time", Clock())
    monkeypatch.setattr(energy_callback, "write_live_record", lambda *a, **k: (writes.append(1), original(*a, **k))[1])
    cb = _fit(tmp_path / "exp", 2)
    work = read_energy(tmp_path / "exp")["phases"]["training"]["work"]
    assert work["epochs"] == 2 and work["steps"] > 0
    assert len(writes) >= 1 + work["steps"]  # the start, then at least every training batch
    assert cb.segments and not energy_record.live_record_path(tmp_path / "exp", "training", FAST).exists()


def test_live_record_with_malformed_work_still_recovers_its_kwh(tmp_path):
    tracker = energy_phase.PhaseTracker("training", tmp_path, FAST)
    assert tracker.start()
    import time

    time.sleep(1.3)
    live = energy_record.live_record_path(tmp_path, "training", FAST)
    energy_record.write_live_record(live, tracker, "seg-w")
    _abandon(tracker)
    record = json.loads(live.read_text())
    record["work"] = {"clips": "many"}  # hand-edited or from another version: not a count
    live.write_text(json.dumps(record))
    found = energy_record.recover_killed_segment(tmp_path, "training", FAST)
    assert found["segment"]["energy_kwh"] > 0 and "work" not in found["segment"] and not live.exists()


# --------------------------------------------------------------------------- codecarbon's public API only (#26)
def _guard_codecarbon_privates(monkeypatch) -> list[str]:
    """Every class of codecarbon answers attribute reads as before, but a read of a ``_name`` (not a
    dunder) made from a frame of dcase_fpd_plugin is written down: ``getattr(obj, "_x", None)`` and
    ``obj._x`` alike, whatever the attribute holds (a method, a clock, a hardware list)."""
    import enum
    import inspect

    import codecarbon  # noqa: F401  (and the modules its trackers use, so that their classes are guarded)
    import codecarbon.core.resource_tracker  # noqa: F401
    import codecarbon.external.hardware  # noqa: F401
    import codecarbon.external.ram  # noqa: F401
    import codecarbon.output_methods.emissions_data  # noqa: F401

    reads: list[str] = []

    def guarded(obj, name):
        if name.startswith("_") and not (name.startswith("__") and name.endswith("__")) \
                and type(obj).__module__.startswith("codecarbon"):
            caller = sys._getframe(1)
            if str(caller.f_globals.get("__name__", "")).startswith("dcase_fpd_plugin"):
                reads.append(f"{type(obj).__name__}.{name} read at {caller.f_code.co_filename}:{caller.f_lineno}")
        return object.__getattribute__(obj, name)

    for module_name, module in list(sys.modules.items()):
        if not module_name.startswith("codecarbon") or module is None:
            continue
        for cls in list(vars(module).values()):
            if (inspect.isclass(cls) and cls.__module__ == module_name and "__getattribute__" not in vars(cls)
                    and not issubclass(cls, (enum.Enum, BaseException)) and type(cls) is not enum.EnumMeta):
                monkeypatch.setattr(cls, "__getattribute__", guarded)
    return reads


def test_no_private_attribute_of_codecarbon_is_read(tmp_path, monkeypatch):
    """A tracker's whole life as a training runs it (the hardware probe, start, the live record of a
    running segment, its recovery's figures, stop) through codecarbon's public API only: no attribute
    of codecarbon whose name starts with ``_`` is read by our code, so a codecarbon release may rename
    its internals without breaking the energy figures or a killed run's recovery."""
    import time

    from dcase_fpd_plugin.energy import tracker as energy_tracker

    reads = _guard_codecarbon_privates(monkeypatch)
    monkeypatch.setattr(energy_tracker, "_probe", None)
    monkeypatch.setattr(energy_tracker, "_sources", {})  # asked again, under the guard
    energy_tracker.start_hardware_probe(energy_config(FAST)).join(timeout=60)
    tracker = energy_phase.PhaseTracker("training", tmp_path, FAST)
    assert tracker.start()
    time.sleep(1.3)  # a reading by codecarbon's own scheduler (every second with FAST)
    assert tracker.measured_s() >= 1.0
    live = energy_record.live_record_path(tmp_path, "training", FAST)
    energy_record.write_live_record(live, tracker, "seg-p", {"clips": 4, "epochs": 0, "steps": 1})
    running = json.loads(live.read_text())["segment"]
    segment = tracker.stop(work={"clips": 4})
    assert reads == [], "\n".join(reads)
    assert running["interrupted"] is True and running["duration_s"] >= 1.0 and running["energy_kwh"] > 0
    assert running["energy_kwh"] == pytest.approx(running["cpu_kwh"] + running["gpu_kwh"] + running["ram_kwh"])
    assert segment is not None and segment["interrupted"] is False and segment["work"] == {"clips": 4}
    assert segment["duration_s"] >= running["duration_s"] and segment["energy_kwh"] >= running["energy_kwh"]
    assert set(segment["sources"]) >= {"cpu", "ram"} and segment["method"] in ("measured", "estimated")
    assert running["sources"] == segment["sources"] and running["hardware"] == segment["hardware"]


def test_sources_name_every_tracking_method_of_codecarbon():
    """The sources of a segment come from the tracking methods codecarbon's ResourceTracker chose:
    every method name its source can set is known here (a codecarbon that adds or renames one fails
    this test instead of reporting an "unknown" source), and each maps as before."""
    import ast
    import inspect

    from codecarbon.core import resource_tracker

    from dcase_fpd_plugin.energy import tracker as energy_tracker

    names: dict[str, set[str]] = {"cpu_tracker": set(), "gpu_tracker": set(), "ram_tracker": set()}
    for node in ast.walk(ast.parse(inspect.getsource(resource_tracker))):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr in names:
                    value = node.value
                    if isinstance(value, ast.Name):  # MODE_CPU_LOAD
                        value = ast.Constant(getattr(resource_tracker, value.id))
                    names[target.attr].add(ast.unparse(value) if isinstance(value, ast.JoinedStr) else value.value)
    assert names["cpu_tracker"] and names["gpu_tracker"]
    assert names["cpu_tracker"] <= set(energy_tracker._CPU_SOURCES), names["cpu_tracker"]
    assert names["gpu_tracker"] <= set(energy_tracker._GPU_SOURCES), names["gpu_tracker"]
    assert "RAM power estimation model" in names["ram_tracker"]
    assert any(n.startswith("f'User specified constant: {") and n.endswith("} Watts'") for n in names["ram_tracker"])
    sources = energy_tracker.sources_of
    assert sources("RAPL", "pynvml", "RAM power estimation model") == {
        "ram": "estimated (RAM power model)", "cpu": "measured (RAPL)", "gpu": "measured (NVML / AMD SMI)"}
    assert sources("cpu_load", "Unspecified", "User specified constant: 8.0 Watts") == {
        "ram": "estimated (forced 8.0 W)", "cpu": "estimated (TDP x CPU load model)"}
    assert sources("PowerMetrics", "PowerMetrics", "RAM power estimation model")["gpu"] == "measured (Apple powermetrics)"
    assert sources("raspberry", "Unspecified", "RAM power estimation model")["ram"] == "measured (Raspberry Pi PMIC)"
    assert sources("global constant", "Unspecified", "x")["cpu"] == "estimated (constant power model, mode constant)"
    odd = sources("quantum", "xpu", "x")
    assert all(v.startswith("unknown") for v in odd.values()) and energy_phase._method(odd) == "estimated"
