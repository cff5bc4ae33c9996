"""Pretrained frame embeddings, extracted once: ``dcase-fpd embeddings extract`` runs a frozen BEATs
(:mod:`dcase_fpd_plugin.models.beats`, from a local checkpoint) over every folder a recipe names and
writes DESED_task's HDF5 files (``<out>/<set>.hdf5``, read by :mod:`dcase_fpd_plugin.data.embeddings`),
resumably, with its energy recorded as the phase ``embeddings`` (``extract``); the command's parser
(``command``).

May import ``energy``, ``recipe``, ``models``, ``data`` and the root modules; never ``training``,
``report``, ``experiments`` or the CLI. Only the CLI imports it. Nothing is imported here.
"""
