"""DESED data: strong / weak / unlabeled TSVs, audio reading, log-mel features, labels, the feature store, mixup, batches of several sources, the DataModule, the demo dataset.

Owns every file read of a run's data. May import the root modules (``branch``, ``atomic``, ``compat``); never ``models``, ``fpd`` or anything above (``import-linter`` contracts in ``pyproject.toml``).
"""
