"""Evaluation: post-processing, DCASE Task 4 metrics, score and prediction files.

    postprocessing  median filter along time (one window or one per class), threshold (pure numpy)
    scores          sed_scores_eval score frames and their TSV files
    reference       the strong (DESED) reference of an evaluation
    metrics         evaluate() -> EvaluationResult (on all classes or a subset), write_outputs()
    soft_reference  soft-label TSVs (MAESTRO), the hard reference DESED_task scores them against
    segment_based   segment-based mpAUC, mAUC, best-threshold F1 (MAESTRO's DCASE 2024 metrics)
    objective       the DCASE 2024 baseline's validation objective and test figures
    report          the metrics table printed in the terminal
    tuning          class_median: a median window and a threshold per class, tuned on validation scores
    csebb           cSEBBs through the optional sebbs extra (AGPL-3.0: imported only when asked for)
    rescoring       a run's raw scores (raw_scores/val, /test): tune on validation, score on test, write
                    postprocessing/<method>/ (eval.postprocessing, dcase-fpd postprocess)

Owns the scoring of frame probabilities in DCASE conventions. May import ``data`` (TSVs, labels) and the root modules; never ``models`` or ``training``: metrics read scores, not models.
"""

from dcase_fpd_plugin.evaluation.metrics import EvaluationResult, evaluate
from dcase_fpd_plugin.evaluation.objective import dcase2024_objective, dcase2024_test_metrics
from dcase_fpd_plugin.evaluation.outputs import write_outputs
from dcase_fpd_plugin.evaluation.postprocessing import decide, median_filter
from dcase_fpd_plugin.evaluation.report import format_metrics_table
from dcase_fpd_plugin.evaluation.scores import audio_id, read_scores, scores_dataframe, write_scores
from dcase_fpd_plugin.evaluation.segment_based import segment_mean_scores, segment_metrics
from dcase_fpd_plugin.evaluation.soft_reference import (SegmentReference, hard_reference, read_hard_reference,
                                                       read_soft_tsv)

__all__ = [
    "EvaluationResult",
    "SegmentReference",
    "audio_id",
    "dcase2024_objective",
    "dcase2024_test_metrics",
    "decide",
    "evaluate",
    "format_metrics_table",
    "hard_reference",
    "median_filter",
    "read_hard_reference",
    "read_scores",
    "read_soft_tsv",
    "scores_dataframe",
    "segment_mean_scores",
    "segment_metrics",
    "write_outputs",
    "write_scores",
]
