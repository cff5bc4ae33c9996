"""dcase-fpd-plugin: Frame Pairwise Distance loss for weakly-supervised sound event detection.

Modules, one concept each (data flows one way):
    data/        DESED TSVs, audio, log-mel features, labels, batches, the DataModule
    models/      feature encoder, attention pooling, the weak SED model
    fpd/         the FPD branch: distances, pair sampler, WPS labeller, loss
    evaluation/  post-processing, DCASE metrics, score/prediction files
    synth/       Scaper-based soundscape generation
    task.py      the LightningModule hosting the model and its branches
    recipe.py    recipe YAML: defaults, validation, command-line overrides
    registry.py  plugin discovery (entry points + in-process register())
    cli.py       the `dcase-fpd` command
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
