"""Evaluation: post-processing, DCASE Task 4 metrics, score and prediction files.

    postprocessing  median filter along time, threshold (pure numpy)
    scores          sed_scores_eval score frames and their TSV files
    metrics         evaluate() -> EvaluationResult, write_outputs()
    report          the metrics table printed in the terminal

Owns the scoring of frame probabilities in DCASE conventions. May import ``data`` (TSVs, labels) and the root modules; never ``models`` or ``training``: metrics read scores, not models.
"""

from dcase_fpd_plugin.evaluation.metrics import EvaluationResult, evaluate
from dcase_fpd_plugin.evaluation.outputs import write_outputs
from dcase_fpd_plugin.evaluation.postprocessing import decide, median_filter
from dcase_fpd_plugin.evaluation.report import format_metrics_table
from dcase_fpd_plugin.evaluation.scores import audio_id, read_scores, scores_dataframe, write_scores

__all__ = [
    "EvaluationResult",
    "audio_id",
    "decide",
    "evaluate",
    "format_metrics_table",
    "median_filter",
    "read_scores",
    "scores_dataframe",
    "write_outputs",
    "write_scores",
]
