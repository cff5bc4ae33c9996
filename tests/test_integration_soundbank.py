"""End to end on real recordings: a mini DESED from the shared soundbank, the weak baseline trained
for a few epochs, and the metrics checked against an independent recomputation."""

import json

import pandas as pd
import pytest

from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mini_desed(soundbank, tmp_path_factory):
    from dcase_fpd_plugin.synth.mini_desed import build_mini_desed

    out = tmp_path_factory.mktemp("mini_desed")
    return build_mini_desed(soundbank, out, n_ss=36, n_rw=36, n_val=16, seed=1, pitch_shift=None, reverb=None)


def test_weak_baseline_on_soundbank(mini_desed, tmp_path):
    data = dict(mini_desed)
    classes = data.pop("classes")
    overrides = [f"data.{k}={v}" for k, v in data.items()] + [
        f"data.classes=[{', '.join(classes)}]",
        f"data.cache_dir={tmp_path / 'cache'}",
        f"training.exp_dir={tmp_path / 'exp'}",
        "training.n_epochs=3",
        "training.batch_size=[12, 12, 0]",
        "training.progress_bar=false",
        "training.num_threads=1",
        "net.channels=[32, 64, 64]",
    ]
    recipe = load_recipe(None, overrides)
    res = train(recipe)
    exp = res.exp_dir
    metrics = json.loads((exp / "metrics.json").read_text())
    preds = exp / "predictions.tsv"
    assert preds.is_file() and metrics["n_clips"] == 16
    for k in ("event_f1", "segment_f1", "tagging_f1", "intersection_f1", "psds1", "psds2"):
        assert metrics[k] is None or 0.0 <= metrics[k] <= 1.0

    # Recompute event-based F1 from predictions.tsv with sed_eval directly (DCASE settings).
    import sed_eval

    ref = pd.read_csv(data["val_tsv"], sep="\t").dropna()
    est = pd.read_csv(preds, sep="\t")
    assert len(est) > 0, "the model detected nothing: the comparison below would be vacuous"
    metric = sed_eval.sound_event.EventBasedMetrics(
        event_label_list=classes, t_collar=0.2, percentage_of_length=0.2,
        empty_system_output_handling="zero_score")
    for name in pd.read_csv(data["val_dur"], sep="\t")["filename"]:
        metric.evaluate(
            reference_event_list=[{"filename": name, **r} for r in
                                  ref[ref.filename == name][["onset", "offset", "event_label"]].to_dict("records")],
            estimated_event_list=[{"filename": name, **r} for r in
                                  est[est.filename == name][["onset", "offset", "event_label"]].to_dict("records")],
        )
    f1 = metric.results_class_wise_average_metrics()["f_measure"]["f_measure"]
    assert f1 == pytest.approx(metrics["event_f1"], abs=1e-9)
