"""dcase-fpd-plugin: Frame Pairwise Distance loss for weakly-supervised sound event detection.

One folder per concern; each imports only the layers below it (import-linter contracts in
pyproject.toml). Data flows one way: TSV + audio -> features -> batch -> encoder -> branches -> losses.

    cli.py        the `dcase-fpd` command: parses, calls one function of a lower layer, prints
    experiments/  N-seed comparisons: plan, run, tables, plots, learning curves
    report/       what a submission needs: complexity, energy against a baseline, EW-PSDS, meta block
    training/     the LightningModule, runs (train / test / infer), callbacks, GPU memory, losses
    energy/       measurement only: codecarbon trackers, the energy callback, energy.json
    recipe/       schema (type, default, doc of every key), loading, `base:` composition, checks
    evaluation/   post-processing, DCASE metrics, score files      synth/  Scaper soundscapes, the bench
    fpd/  models/  data/   the FPD branch, the encoders, DESED data
    registry.py  branch.py  compat.py  atomic.py   plugins, the branch contract, dependency shims, atomic writes
"""

__version__ = "0.2.0"

DESED_CLASSES = (
    "Alarm_bell_ringing",
    "Blender",
    "Cat",
    "Dishes",
    "Dog",
    "Electric_shaver_toothbrush",
    "Frying",
    "Running_water",
    "Speech",
    "Vacuum_cleaner",
)
