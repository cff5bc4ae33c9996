"""What a DCASE submission needs from a finished run: model complexity (parameters, MACs per 10 s
clip), energy against a baseline's (one of our runs, or the official baseline's codecarbon files as
DESED_task writes them) with the energy-weighted PSDS (EW-PSDS), and the meta block of a
submission's YAML; ``dcase-fpd report``.

May import everything below it: ``training`` (to rebuild a model from its checkpoint), ``energy``,
``recipe``, ``data``, ``evaluation`` and the root modules; never ``experiments`` or the CLI.
"""
