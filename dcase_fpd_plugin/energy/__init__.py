"""Energy per phase with codecarbon: training, devtest inference, evaluation inference.

DCASE submissions report the energy (kWh) of training and of inference. We measure it with
codecarbon's :class:`OfflineEmissionsTracker` (no network), one tracker per phase:

* ``training``   -- Lightning ``fit`` start to ``fit`` end (:class:`EnergyCallback`);
* ``devtest``    -- a ``trainer.test`` run on the test (or validation) set (:func:`track_energy`);
* ``evaluation`` -- ``infer`` on a folder of audio (:func:`track_energy`).

Files, in the experiment folder ``EXP_DIR``::

    energy.json                 kWh per phase (segments + totals), see below
    energy/<phase>.csv          codecarbon's own CSV, one row per tracked segment (written when its
                                tracker stops: a killed run leaves no row there)
    energy/training.live.json   the running training segment's figures so far (rewritten atomically
                                about every ``measure_power_secs``; removed when the segment is recorded)

**Measured or estimated.** codecarbon reads power counters where the machine exposes them
(CPU: Intel RAPL, Intel Power Gadget, Windows EMI, Apple powermetrics; GPU: NVML / AMD SMI).
Without them (as on most VMs and containers) it falls back to a *model*: CPU power = TDP x load
(or a constant), so the kWh are then duration x modelled power. RAM power is always codecarbon's
model. Every figure therefore carries ``method``: ``"measured"`` when the CPU -- and the GPU, if
one is tracked -- are read from power counters, else ``"estimated"``; ``sources`` says what each
component used. Print a kWh figure only together with its method (see :func:`format_kwh`).

``energy.json`` (``format`` 1)::

    {"format": 1, "unit": "kWh",
     "phases": {"training": {"energy_kwh": 0.0123, "duration_s": 3600.0, "method": "estimated",
                             "n_segments": 2, "segments": [SEGMENT, SEGMENT],
                             "unmeasured_s": 0.0, "unmeasured": [SPAN, ...]},
                "devtest": {...}, "evaluation": {...}},
     "total_kwh": 0.0150, "method": "estimated", "unmeasured_s": 0.0, "updated": "2026-...Z"}

    SEGMENT = {"started": ISO time (UTC), "duration_s": s, "energy_kwh": kWh,
               "cpu_kwh", "gpu_kwh", "ram_kwh": kWh, "emissions_kg_co2eq": kg,
               "method": "measured" | "estimated", "sources": {"cpu": ..., "gpu": ..., "ram": ...},
               "tracking_mode": "machine" | "process", "country_iso_code": "FRA",
               "hardware": {cpu_model, cpu_count, ram_total_gib, gpu_model, gpu_count, torch, ...},
               "codecarbon_version": "3.x", "csv": "energy/training.csv", "interrupted": false,
               "work": {"clips": n, "epochs": n, "steps": n}}
              (a segment recovered after a kill: + "recovered": "killed", "id", "measured_until"; "csv": null;
              no "work")

    SPAN = {"id", "from": ISO, "to": ISO, "duration_s": s, "ran_at_least_s": s (when known), "reason": ...}

``duration_s`` of a phase is the measured time (the sum of its segments); ``energy_kwh`` is None and
``method`` ``"unmeasured"`` for a phase with no measured segment.

**Work.** ``work`` says how much the segment did, so that two runs that did different amounts can
be compared per unit of work (``dcase-fpd report --baseline``): ``training``: clips trained on
(summed over the processes of a multi-process run), completed epochs and optimiser steps;
``devtest`` and ``evaluation``: clips scored / inferred. A phase's ``work`` is the sum over its
segments, present only when every segment says it (files written before it existed, and segments
recovered after a kill, have none).

A resumed training adds a segment to ``training`` (the phase total is the sum of its segments);
a fresh training (``fit`` without a checkpoint to resume) starts a new ``energy.json``. Inference
phases keep only their latest segment unless ``accumulate=True`` (e.g. an evaluation set inferred
folder by folder). Only the global-zero process tracks (``tracking_mode: machine`` measures the
whole computer; on several nodes only node 0 is measured).

**A killed training** (SIGKILL, out of memory, power cut) cannot stop its tracker. It leaves
``energy/training.live.json``: what codecarbon had measured up to its latest power reading. The
``--resume`` (a fit from a checkpoint) adds that as a segment marked ``"recovered": "killed"``, and
the span from that reading to the resume, in which the process died, as an *unmeasured* SPAN (no
kWh; ``duration_s`` an upper bound of the unmeasured running time, ``ran_at_least_s`` a lower bound
from the resumed checkpoint's time): the phase's kWh is then a lower bound, and the report says so
(:func:`recover_killed_segment`).

A tracker that cannot start or stop (codecarbon missing, an exception inside it) warns with
:class:`EnergyWarning` and the run goes on without that figure.

Owns the measurement only: codecarbon's trackers (``tracker``), a phase's measurement (``phase``), the record ``energy.json`` (``record``) and the Lightning callback (``callback``). May import ``recipe`` and the root modules; never ``training``, ``report`` or above. What a submission makes of these figures lives in ``report``.
"""
