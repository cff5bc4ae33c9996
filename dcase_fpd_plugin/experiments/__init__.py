"""N-seed comparisons of recipes: ``dcase-fpd compare``, its tables and plots.

    dcase-fpd compare weak weak_fpd_ip --seeds 20 --out exp/cmp \
        [--jobs 4] training.n_epochs=30

Each recipe is trained and tested once per seed (``--seed-start`` .. ``--seed-start + N - 1``);
the command-line overrides apply to every recipe, and compare itself sets ``training.seed`` and
``training.exp_dir``. Output folder::

    OUT/<recipe name>/seed_<s>/     one experiment folder per run (see training/runs.py), plus
                                    compare_run.json (wall time of the run, written by compare)
    OUT/summary.csv                 one row per recipe x metric (see summarise())
    OUT/summary.md                  the paper's Tables 1-3 layout, plus intersection F1, PSDS1,
                                    PSDS2 and the mean energy per recipe
    OUT/runs.csv                    one row per run: recipe, seed, every scalar metric, energy, wall time
    OUT/per_class_f1.csv            mean / std per-class event F1 per recipe (the bar chart's numbers)
    OUT/event_f1_sorted.png         each recipe's event F1 over the seeds, sorted (the paper's Fig. 3)
    OUT/per_class_f1.png            mean per-class event F1 per recipe, std error bars
    OUT/learning_curves.csv, .png   validation F1s per epoch, mean +- std per recipe (see
                                    learning_curves; only when the runs logged validations)
    OUT/late_epochs.csv             validation F1s averaged over each run's last 5 epochs, mean +- std
    OUT/energy.csv                  mean kWh per recipe and phase, the training-energy ratio against the
                                    first recipe (normalised by work) and EW-PSDS (see energy_table())
    OUT/psds1_vs_training_kwh.png   PSDS1 against training kWh, one point per run, a colour per recipe

Resuming: a run folder that already holds ``metrics.json`` is skipped when its ``recipe.yaml``
is the same resolved recipe (its location and display-only keys aside, see ``IDENTITY_IGNORED``);
a folder holding ``checkpoints/last.ckpt`` but no ``metrics.json`` continues with
``train(..., resume=True)``. A folder made by a different recipe, or trained before 0.2's fidelity
fixes (no ``dcase_fpd_fidelity`` in its metrics.json or last checkpoint), is refused (before anything
is trained) unless ``--force``, which redoes every run. The reports are rebuilt from the run folders
each time (cheap; no training).

Energy against the first recipe: ``kWh_first / kWh_recipe`` of the training phase, the first
recipe's kWh scaled to the recipe's amount of work (training clips, else epochs) where they differ,
and EW-PSDS = PSDS x that ratio, as ``dcase-fpd report --baseline`` does for two runs
(:mod:`dcase_fpd_plugin.report.energy_comparison`).

Statistics: mean, *sample* standard deviation (ddof = 1; undefined, written empty / "n/a", with one
seed), best (maximum; minimum for energy) over the seeds whose value is defined (a metric that was
not computed, e.g. PSDS with ``eval.psds=false``, is None in metrics.json and left out). The gain
is the difference of the means, recipe minus the first recipe given, in the metric's own units.

The aggregation (``summarise``, ``runs_table``, ``per_class_table``, ``energy_table``,
``format_summary_markdown``) is pure: it takes :class:`RunRecord` values and needs no training.

Modules: ``records`` (what is read back from a run folder), ``plan`` (what to do with each run), ``run`` (the trainings), ``tables``, ``plots``, ``learning_curves``, ``reports`` (the files), ``command`` (``dcase-fpd compare``). The top layer below the CLI: may import everything below it (``report``, ``training``, ``energy``, ``recipe``, ...), never the CLI.
"""
