"""Validation and test score clips longer than ``feats.clip_s`` whole, in infer's windows (#27 item 6).

A tiny demo model (4 s clips) is trained with a validation and a test set holding a 10 s file made of
demo test clips (2.5 clips, their events shifted to their place in it) beside short clips.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from dcase_fpd_plugin.cli import main
from dcase_fpd_plugin.evaluation.scores import read_scores
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.runs import train

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
CLIP_S, LONG_S = 4.0, 10.0


def long_set(demo_data, root: Path) -> dict[str, Path]:
    """long.wav (test clips 0, 1 and the first half of 2, end to end) and test clips 3-5, with their
    strong and durations TSVs."""
    clips = sorted(Path(demo_data["test_folder"]).glob("*.wav"))
    folder = root / "audio"
    folder.mkdir(parents=True)
    parts = [sf.read(p, dtype="int16")[0] for p in clips[:3]]
    parts[2] = parts[2][: len(parts[2]) // 2]
    sf.write(folder / "long.wav", np.concatenate(parts), 16000, subtype="PCM_16")
    ref = pd.read_csv(demo_data["test_tsv"], sep="\t").dropna()
    shift = {p.name: i * CLIP_S for i, p in enumerate(clips[:3])}
    long = ref[ref.filename.isin(shift)].copy()
    long["onset"] += long.filename.map(shift)
    long["offset"] = (long["offset"] + long.filename.map(shift)).clip(upper=LONG_S)
    long = long[long.onset < LONG_S - 0.1].assign(filename="long.wav")
    short = ref[ref.filename.isin([p.name for p in clips[3:6]])]
    for p in clips[3:6]:
        sf.write(folder / p.name, sf.read(p, dtype="int16")[0], 16000, subtype="PCM_16")
    events = pd.concat([long, short])
    assert (long.onset >= CLIP_S).sum() >= 2, "the fixture needs reference events past clip_s"
    tsv, dur = root / "long.tsv", root / "long_dur.tsv"
    events.to_csv(tsv, sep="\t", index=False, float_format="%.3f")
    names = ["long.wav"] + [p.name for p in clips[3:6]]
    pd.DataFrame({"filename": names, "duration": [LONG_S] + [CLIP_S] * 3}).to_csv(dur, sep="\t", index=False)
    return {"folder": folder, "tsv": tsv, "dur": dur, "events": events}


def test_validation_and_test_score_a_long_clip_over_its_whole_length(demo_data, tmp_path):
    s = long_set(demo_data, tmp_path / "long")
    val_tsv = tmp_path / "long" / "long_val.tsv"
    val_tsv.write_text(s["tsv"].read_text())
    overrides = [f"data.{k}={v}" for k, v in demo_data.items()] + [
        f"feats.clip_s={CLIP_S}", f"data.cache_dir={tmp_path / 'cache'}", f"training.exp_dir={tmp_path / 'exp'}",
        "training.n_epochs=2", "training.batch_size=[6, 6, 0]", "training.progress_bar=false",
        "training.num_threads=1", "eval.psds=true", f"data.val_folder={s['folder']}", f"data.val_tsv={val_tsv}",
        f"data.val_dur={s['dur']}", f"data.test_folder={s['folder']}", f"data.test_tsv={s['tsv']}",
        f"data.test_dur={s['dur']}"]
    res = train(load_recipe(DEMO, overrides))
    exp = tmp_path / "exp"
    m = res.metrics
    assert m["n_clips"] == 4 and m["event_f1"] is not None and m["psds1"] is not None
    logged = pd.read_csv(next((exp / "logs").rglob("metrics.csv")))
    assert logged["val/obj"].notna().sum() == 2  # validation scored the long clip every epoch
    # the scores cover the whole file, on the model's frame grid
    scores = read_scores(exp / "scores")
    long = scores["long"]
    assert long["offset"].iloc[-1] == LONG_S and long["onset"].iloc[-1] > CLIP_S
    assert scores["test_0003"]["offset"].iloc[-1] <= CLIP_S  # a short clip as it always was
    # as infer scores the same file: the same windows, stitched the same way, the same events
    infer_dir = tmp_path / "infer"
    infer_dir.mkdir()
    (infer_dir / "long.wav").symlink_to(s["folder"] / "long.wav")
    assert main(["infer", "--ckpt", str(res.best_ckpt or res.last_ckpt), "--audio", str(infer_dir),
                 "--out", str(tmp_path / "infer.tsv"), "--scores", str(tmp_path / "infer_scores")]) == 0
    pd.testing.assert_frame_equal(read_scores(tmp_path / "infer_scores")["long"], long)
    predicted = pd.read_csv(exp / "predictions.tsv", sep="\t")
    inferred = pd.read_csv(tmp_path / "infer.tsv", sep="\t")
    got = predicted[predicted.filename == "long.wav"].reset_index(drop=True)
    np.testing.assert_allclose(got[["onset", "offset"]].to_numpy(float),
                               inferred[["onset", "offset"]].to_numpy(float), atol=1e-3)
    assert list(got.event_label) == list(inferred.event_label)
