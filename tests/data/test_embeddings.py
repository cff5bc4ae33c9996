"""Reading DESED_task's HDF5 embeddings files (data/embeddings.py): the format, lookup by stem,
refusals that name the file and the keys, pickling into workers, clips missing from a file."""

from __future__ import annotations

import pickle
import re
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dcase_fpd_plugin.data.embeddings import (EMBEDDING_SETS, EmbeddingFile, check_clips, clip_key, embedding_sets,
                                              embeddings_path)
from dcase_fpd_plugin.data.tsv import DataError

STEMS = ["Y--4gqARaEJE_0.000_9.000", "Y-0d7v4-n_fs_30.000_40.000", "synth_0003"]


def desed_task_file(path: Path, stems=STEMS, dim: int = 6, n_frames: int = 496, seed: int = 0) -> dict:
    """A file written the way DESED_task's extract_embeddings.py writes one (a list of str as filenames)."""
    rng = np.random.default_rng(seed)
    frames = rng.standard_normal((len(stems), dim, n_frames)).astype(np.float32)
    with h5py.File(path, "w") as f:
        f.create_dataset("global_embeddings", data=frames.mean(axis=2))
        f.create_dataset("frame_embeddings", data=frames)
        names = f.create_dataset("filenames", data=["example_00.wav"] * len(stems))
        for i, s in enumerate(stems):
            names[i] = s
    return {"frames": frames, "global": frames.mean(axis=2)}


def test_a_desed_task_file_reads_by_stem(tmp_path):
    path = embeddings_path(tmp_path, "weak_train")
    assert path == tmp_path / "weak_train.hdf5"
    data = desed_task_file(path)
    f = EmbeddingFile(path)
    assert (len(f), f.dim, f.n_frames) == (3, 6, 496) and f.stems == STEMS
    # a path, a file name or the stem itself; a stem with dots stays whole
    for key in (Path("/data/weak") / f"{STEMS[0]}.wav", f"{STEMS[0]}.flac", STEMS[0]):
        assert key in f and f.row(key) == 0
    out = f.frames(f"/somewhere/{STEMS[2]}.wav")
    assert out.dtype == np.float32 and out.shape == (6, 496)
    np.testing.assert_array_equal(out, data["frames"][2])
    np.testing.assert_array_equal(f.global_(STEMS[1]), data["global"][1])
    assert "absent.wav" not in f
    with pytest.raises(DataError, match=r"weak_train\.hdf5: no embeddings for clip 'absent'"):
        f.frames("absent.wav")
    assert clip_key("a/b.c.WAV") == "b.c" and clip_key("x_0.000_9.000") == "x_0.000_9.000"


def test_a_file_with_wrong_keys_is_refused_naming_the_missing_keys(tmp_path):
    path = tmp_path / "synth_train.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset("frame_embeddings", data=np.zeros((1, 2, 3), np.float32))
        f.create_dataset("embeddings", data=np.zeros((1, 2), np.float32))
        f.create_dataset("names", data=["a"])
    with pytest.raises(DataError) as err:
        EmbeddingFile(path)
    msg = str(err.value)
    assert str(path) in msg and "missing global_embeddings, filenames" in msg
    assert "it has: embeddings, frame_embeddings, names" in msg


@pytest.mark.parametrize("what", ["shapes", "duplicates", "not_hdf5", "absent"])
def test_broken_files_are_refused_naming_the_file(tmp_path, what):
    path = tmp_path / "devtest.hdf5"
    if what == "shapes":
        with h5py.File(path, "w") as f:
            f.create_dataset("frame_embeddings", data=np.zeros((2, 4, 5), np.float32))
            f.create_dataset("global_embeddings", data=np.zeros((2, 3), np.float32))
            f.create_dataset("filenames", data=["a", "b"])
        expected = r"inconsistent shapes: frame_embeddings \(2, 4, 5\), global_embeddings \(2, 3\)"
    elif what == "duplicates":
        desed_task_file(path, stems=["a", "b", "a"])
        expected = "1 clip name\\(s\\) appear more than once in filenames: a"
    elif what == "not_hdf5":
        path.write_text("no")
        expected = "unreadable HDF5 file"
    else:
        expected = "embeddings file not found"
    with pytest.raises(DataError, match=expected) as err:
        EmbeddingFile(path)
    assert str(path) in str(err.value)


class _Rows(torch.utils.data.Dataset):
    def __init__(self, file: EmbeddingFile):
        self.file = file

    def __len__(self):
        return len(self.file)

    def __getitem__(self, i):
        return torch.from_numpy(self.file.frames(self.file.stems[i]))


def test_the_file_pickles_into_dataloader_workers(tmp_path):
    path = tmp_path / "synth_val.hdf5"
    data = desed_task_file(path, dim=4, n_frames=8)
    f = EmbeddingFile(path)
    f.frames(STEMS[0])  # the handle is open in this process
    clone = pickle.loads(pickle.dumps(f))
    np.testing.assert_array_equal(clone.frames(STEMS[1]), data["frames"][1])
    loader = torch.utils.data.DataLoader(_Rows(f), batch_size=3, num_workers=1)
    (batch,) = list(loader)
    np.testing.assert_array_equal(batch.numpy(), data["frames"])
    f.close()
    np.testing.assert_array_equal(f.frames(STEMS[2]), data["frames"][2])  # reopens


def test_clips_missing_from_a_file_are_reported_like_missing_audio(tmp_path):
    path = tmp_path / "weak_train.hdf5"
    desed_task_file(path, stems=[f"c{i:02d}" for i in range(8)], dim=2, n_frames=4)
    listed = [tmp_path / "audio" / f"c{i:02d}.wav" for i in range(20)]  # 12 not in the file
    with pytest.raises(DataError) as err:
        check_clips(path, listed, "weak.tsv", 0.5)
    msg = str(err.value)
    assert msg.startswith(f"weak.tsv: 12 of 20 listed clips have no embeddings in {path}:\n  c08.wav\n  c09.wav")
    assert "c17.wav\n  ..." in msg and "c18.wav" not in msg  # the first 10 names
    assert "(60.0% missing > data.max_missing_fraction=0.5; raise it to go on without these clips" in msg
    with pytest.warns(UserWarning, match=re.escape("weak.tsv: 12 of 20 listed clips have no embeddings")) as rec:
        kept = check_clips(EmbeddingFile(path), listed, "weak.tsv", 0.6)
    assert "(going on without them: 60.0% <= data.max_missing_fraction)" in str(rec[0].message)
    assert kept == listed[:8]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_clips(path, listed[:8], "weak.tsv", 0.0) == listed[:8]


def test_the_set_table_reads_recipe_keys_with_get():
    assert EMBEDDING_SETS["synth_train"] == "synth_folder" and EMBEDDING_SETS["devtest"] == "test_folder"
    assert EMBEDDING_SETS["weak_train"] == EMBEDDING_SETS["weak_val"] == "weak_folder"
    assert EMBEDDING_SETS["synth_val"] == "val_folder"
    assert EMBEDDING_SETS["maestro_real_train"] == "real_maestro_train_folder"
    assert {"strong_train", "unlabeled_train"} <= set(EMBEDDING_SETS)
    data = {"synth_folder": "s", "weak_folder": "w", "unlabeled_folder": None, "test_folder": "t"}  # no strong_folder key
    assert embedding_sets(data) == {"synth_train": Path("s"), "weak_train": Path("w"), "weak_val": Path("w"),
                                    "devtest": Path("t")}
