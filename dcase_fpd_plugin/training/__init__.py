"""Training: the LightningModule that hosts a model and its branches (``task``), the runs that train,
test and infer (``runs``), ``dcase-fpd postprocess`` (``postprocess``), the one-run-per-folder lock (``lock``), their callbacks, the Trainer's precision, GPU memory, the training logs,
the mean teacher and the classification losses.

May import: ``recipe``, ``energy``, ``evaluation``, ``fpd``, ``models``, ``data`` and the package's
root modules; never ``report``, ``experiments`` or the CLI. Nothing is imported here, so that
``training.precision`` and its light siblings load without Lightning.
"""
