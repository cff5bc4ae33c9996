"""Mean teacher (EMA, consistency, ramp-up), the DCASE training scheme in SEDTask, and the weak
baseline left exactly as it was."""

import hashlib
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import pytorch_lightning as pl
import torch
from torch import nn

from dcase_fpd_plugin.branch import ModelOutput
from dcase_fpd_plugin.data.demo import DEMO_CLASSES
from dcase_fpd_plugin.training.mean_teacher import (MeanTeacher, consistency_loss, ema_factor_at, ema_update,
    sigmoid_rampup)
from dcase_fpd_plugin.recipe.schema import RecipeError
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.task import SEDTask, load_task
from dcase_fpd_plugin.training.runs import train

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


# ---------------------------------------------------------------- ramp-up and EMA
def test_rampup_values():
    assert sigmoid_rampup(0, 100) == pytest.approx(math.exp(-5))  # ~0.0067
    assert sigmoid_rampup(50, 100) == pytest.approx(math.exp(-1.25))  # mid: ~0.287
    assert sigmoid_rampup(100, 100) == 1.0
    assert sigmoid_rampup(250, 100) == 1.0  # stays at 1 after the ramp
    assert sigmoid_rampup(-3, 100) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(7, 0) == 1.0  # no ramp-up
    values = [sigmoid_rampup(s, 100) for s in range(101)]
    assert all(a < b for a, b in zip(values, values[1:]))  # strictly increasing


def test_ema_factor_is_true_average_then_decay():
    assert ema_factor_at(1, 0.999) == pytest.approx(0.5)
    assert ema_factor_at(3, 0.999) == pytest.approx(0.75)
    assert ema_factor_at(10_000, 0.999) == pytest.approx(0.999)


def test_ema_update_math_and_no_gradient_to_teacher():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    mt = MeanTeacher(student, ema_factor=0.9)
    assert all(not p.requires_grad for p in mt.teacher.parameters())
    old_teacher = [p.detach().clone() for p in mt.teacher.parameters()]
    opt = torch.optim.SGD(student.parameters(), lr=0.5)
    x = torch.randn(8, 4)
    loss = student(x).pow(2).sum() + mt.teacher(x).pow(2).sum()  # the teacher's output is in the loss
    loss.backward()
    assert all(p.grad is None for p in mt.teacher.parameters())
    opt.step()
    alpha = mt.update(student, n_steps=1000)
    assert alpha == 0.9
    for t_old, t, s in zip(old_teacher, mt.teacher.parameters(), student.parameters()):
        assert torch.allclose(t, 0.9 * t_old + 0.1 * s.detach(), atol=1e-6)
    assert not all(torch.allclose(t, s) for t, s in zip(mt.teacher.parameters(), student.parameters()))
    ema_update(mt.teacher, student, 0.0)  # alpha 0 copies the student
    assert all(torch.equal(t, s) for t, s in zip(mt.teacher.parameters(), student.parameters()))


def _out(frame, clip):
    return ModelOutput(embeddings=torch.zeros(*frame.shape[:2], 1), frame_probs=frame, clip_probs=clip)


def test_consistency_loss_zero_when_equal_positive_otherwise():
    torch.manual_seed(0)
    frame, clip = torch.rand(3, 7, 4), torch.rand(3, 4)
    same = _out(frame, clip)
    for kind in ("mse", "bce"):
        base = consistency_loss(same, _out(frame.clone(), clip.clone()), kind=kind)
        if kind == "mse":
            assert float(base) == 0.0
        other = consistency_loss(same, _out(torch.rand(3, 7, 4), torch.rand(3, 4)), kind=kind)
        assert float(other) > float(base)
    # MSE value: mean squared frame error + mean squared clip error
    t_frame, t_clip = frame + 0.1, clip - 0.2
    assert float(consistency_loss(same, _out(t_frame, t_clip))) == pytest.approx(0.01 + 0.04, rel=1e-4)
    # padded frames do not count
    valid = torch.ones(3, 7, dtype=torch.bool)
    valid[:, 5:] = False
    t_frame = frame.clone()
    t_frame[:, 5:] = 1 - frame[:, 5:]
    assert float(consistency_loss(same, _out(t_frame, clip), valid)) == 0.0
    # the gradient flows to the student only
    s_frame = frame.clone().requires_grad_()
    t = _out(torch.rand(3, 7, 4).requires_grad_(), clip)
    consistency_loss(_out(s_frame, clip), t).backward()
    assert s_frame.grad is not None and t.frame_probs.grad is None


# ---------------------------------------------------------------- the weak baseline is unchanged
WEAK_KEYS_SHA1 = "78eaeb97e2e8d12d660ac77d272e69db7e3dfe77"  # state-dict keys before the DCASE scheme existed
WEAK_INIT_SUM = 646.7797716890716  # sum of the initial state dict at torch.manual_seed(0), same reference


def test_weak_recipe_unchanged():
    recipe = load_recipe(RECIPES / "weak.yaml")
    tr = recipe["training"]
    assert (tr["mean_teacher"], tr["strong_loss"], tr["mixup"], recipe["opt"]["lr_warmup"]) == (False,) * 4
    torch.manual_seed(0)
    task = SEDTask(recipe)
    sd = task.state_dict()
    assert hashlib.sha1("\n".join(sd).encode()).hexdigest() == WEAK_KEYS_SHA1
    assert sum(float(v.double().sum()) for v in sd.values() if v.is_floating_point()) == pytest.approx(
        WEAK_INIT_SUM, rel=1e-12)
    assert task.mean_teacher is None
    opt = task.configure_optimizers()
    assert isinstance(opt, torch.optim.Adam)  # no scheduler
    assert len(opt.param_groups[0]["params"]) == len(list(task.parameters()))
    assert task._mixup(batch := object()) is batch


def test_teacher_options_refused_without_teacher():
    with pytest.raises(RecipeError, match="training.eval_model"):
        load_recipe(RECIPES / "weak.yaml", ["training.eval_model=teacher"])
    with pytest.raises(RecipeError, match="training.ema_factor"):
        load_recipe(RECIPES / "weak.yaml", ["training.ema_factor=1.5"])


def test_dcase_recipes_load():
    for name in ("dcase2023_baseline.yaml", "dcase2023_baseline_fpd.yaml"):
        recipe = load_recipe(RECIPES / name)
        assert recipe["net"]["name"] == "crnn" and recipe["training"]["batch_size"] == [12, 12, 24]
        assert recipe["training"]["mean_teacher"] and recipe["training"]["mixup"] and recipe["opt"]["lr_warmup"]
        task = SEDTask(recipe)
        assert task.n_frames == 156 and task.frame_hop_s == pytest.approx(0.064)
        keys = task.state_dict().keys()
        assert any(k.startswith("mean_teacher.teacher.") for k in keys)
        n_teacher = sum(p.numel() for p in task.mean_teacher.parameters())
        n_trained = sum(p.numel() for p in task.trained_parameters())
        assert n_teacher == 1_112_420 and n_trained == sum(p.numel() for p in task.parameters()) - n_teacher
    assert load_recipe(RECIPES / "dcase2023_baseline_fpd.yaml")["branches"]["fpd"]["enabled"]


# ---------------------------------------------------------------- end to end on the toy dataset
def test_crnn_mean_teacher_mixup_trains_one_epoch(demo_data, demo_overrides):
    """CRNN + mean teacher + mixup + strong/weak losses + lr warm-up, with an unlabelled slice (the
    weak clips' audio), on 4 s clips; then the checkpoint holds a teacher that moved off the student."""
    torch.set_num_threads(1)
    overrides = demo_overrides + [
        f"data.classes=[{', '.join(DEMO_CLASSES)}]",
        "feats.n_mels=128",
        f"data.unlabeled_folder={demo_data['weak_folder']}",
        "training.batch_size=[4, 4, 4]",
        "training.limit_train_batches=4",
        "training.log_every_n_steps=1",
        "training.n_epochs_warmup=1",
        "branches.fpd.enabled=true",
    ]
    recipe = load_recipe(RECIPES / "dcase2023_baseline.yaml", overrides)
    for k in ("synth_folder", "weak_folder", "val_folder"):
        assert recipe["data"][k] == demo_data[k]
    res = train(recipe)
    metrics = json.loads((res.exp_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["segment_f1"] <= 1.0
    ckpt = torch.load(res.exp_dir / "checkpoints" / "last.ckpt", weights_only=False)
    sd = ckpt["state_dict"]
    t_keys = [k for k in sd if k.startswith("mean_teacher.teacher.")]
    assert t_keys and len(t_keys) == len([k for k in sd if k.startswith("model.")])
    w = "cnn.0.conv.weight"
    pl.seed_everything(recipe["training"]["seed"], verbose=False)  # as train() does before building the task
    init = SEDTask(recipe).state_dict()[f"model.{w}"]
    assert not torch.equal(sd[f"model.{w}"], sd[f"mean_teacher.teacher.{w}"])  # the teacher is not the student
    assert not torch.equal(init, sd[f"mean_teacher.teacher.{w}"])  # ... and was updated
    # the optimiser holds the student (+ FPD projection), not the teacher
    n_opt = len(ckpt["optimizer_states"][0]["param_groups"][0]["params"])
    assert n_opt == len([k for k in sd if k.startswith(("model.", "branches."))
                         and not k.endswith(("running_mean", "running_var", "num_batches_tracked"))])
    # lr warm-up: 4 steps per epoch, ramp-up over 1 epoch: after 4 steps the lr is lr x ramp(5 / 4) = lr
    sched = ckpt["lr_schedulers"][0]
    assert sched["last_epoch"] == 4
    assert ckpt["optimizer_states"][0]["param_groups"][0]["lr"] == pytest.approx(1e-3)
    # the consistency weight followed const_max x exp(-5 (1 - step / 4)^2), steps counted from 1
    log = pd.read_csv(next((res.exp_dir / "logs").rglob("metrics.csv")))
    logged = log["train/consistency_weight_step"].dropna().tolist()
    assert logged == pytest.approx([2.0 * sigmoid_rampup(s, 4) for s in range(1, 5)], rel=1e-5)
    assert log["train/ema_factor"].dropna().tolist() == pytest.approx([1 / 2, 2 / 3, 3 / 4, 4 / 5])
    assert "val/teacher/event_f1" in log.columns and "train/loss_strong_step" in log.columns
    assert log["train/mixup_step"].dropna().sum() >= 1  # seed 42: at least one of the 4 batches was mixed
    # a checkpoint reloads with its teacher, even if the recipe given says otherwise
    task = load_task(res.exp_dir / "checkpoints" / "last.ckpt", load_recipe(RECIPES / "dcase2023_baseline.yaml",
                                                                             overrides + ["training.mean_teacher=false"]))
    assert task.mean_teacher is not None


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_dcase_supervised_losses():
    """strong_loss: frame BCE over the valid frames of SS clips + clip BCE over RW clips only;
    the weak baseline: clip BCE over every clip with a weak label (SS included)."""
    from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SS, SOURCE_UL, Batch

    torch.manual_seed(0)
    recipe = load_recipe(RECIPES / "dcase2023_baseline.yaml",
                         ["training.mean_teacher=false", "training.mixup=false", "training.batch_size=[2, 2, 0]"])
    task = SEDTask(recipe).eval()  # eval: no dropout, so two forward passes agree
    b, n_in, c = 5, 64, 10
    t = task.model.output_frames(n_in)
    source = torch.tensor([SOURCE_SS, SOURCE_SS, SOURCE_RW, SOURCE_RW, SOURCE_UL])
    strong = (torch.rand(b, t, c) > 0.7).float() * (source == SOURCE_SS)[:, None, None]
    weak = (torch.rand(b, c) > 0.5).float()
    weak[:2] = strong[:2].amax(1)
    valid = torch.ones(b, t, dtype=torch.bool)
    valid[1, t // 2:] = False
    batch = Batch(feats=torch.randn(b, 128, n_in), strong=strong, has_strong=source == SOURCE_SS, weak=weak,
                  has_weak=source != SOURCE_UL, source=source, frame_valid=valid, filenames=[str(i) for i in range(b)])
    with torch.no_grad():
        out = task.model(batch.feats, valid)
        loss = task.training_step(batch, 0)
    bce = torch.nn.functional.binary_cross_entropy
    m = valid[:2]
    expected = bce(out.frame_probs[:2][m], strong[:2][m]) + bce(out.clip_probs[2:4], weak[2:4])
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)
    recipe["training"]["strong_loss"] = False
    task.recipe = recipe
    with torch.no_grad():
        assert float(task.training_step(batch, 0)) == pytest.approx(float(bce(out.clip_probs[:4], weak[:4])), rel=1e-5)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_teacher_first_changes_only_the_order():
    """training.teacher_first runs the teacher's forward before the student's (a lower peak memory):
    without dropout (no random draws whose order changes) the loss and every gradient are those of
    DESED_task's order, and the recipe refuses it without a teacher."""
    from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SS, SOURCE_UL, Batch

    def step(first: bool, dropout: float):
        base = ["training.mixup=false", "training.batch_size=[2, 2, 1]", f"net.crnn_dropout={dropout}"]
        torch.manual_seed(0)
        recipe = load_recipe(RECIPES / "dcase2023_baseline.yaml", [*base, f"training.teacher_first={str(first).lower()}"])
        task = SEDTask(recipe).train()
        task.consistency_weight = lambda step=None: 1.0  # no Trainer here to count steps
        with torch.no_grad():  # a teacher apart from the student, so that the consistency term is not zero
            for p in task.mean_teacher.parameters():
                p.mul_(0.9)
        n_in = 64
        t = task.model.output_frames(n_in)
        source = torch.tensor([SOURCE_SS, SOURCE_SS, SOURCE_RW, SOURCE_RW, SOURCE_UL])
        g = torch.Generator().manual_seed(1)
        strong = (torch.rand(5, t, 10, generator=g) > 0.7).float() * (source == SOURCE_SS)[:, None, None]
        batch = Batch(feats=torch.randn(5, 128, n_in, generator=g), strong=strong, has_strong=source == SOURCE_SS,
                      weak=strong.amax(1), has_weak=source != SOURCE_UL, source=source,
                      frame_valid=torch.ones(5, t, dtype=torch.bool), filenames=[str(i) for i in range(5)])
        calls = []
        task.mean_teacher.register_forward_hook(lambda m, a, o: calls.append(1))
        loss = task.training_step(batch, 0)
        loss.backward()
        assert len(calls) == 1  # one teacher forward per step, whichever the order
        teacher_stats = {n: b.clone() for n, b in task.mean_teacher.named_buffers()}  # BN running stats
        return float(loss.detach()), {n: p.grad.clone() for n, p in task.model.named_parameters()}, teacher_stats

    (loss_a, grads_a, stats_a), (loss_b, grads_b, stats_b) = step(False, 0.0), step(True, 0.0)
    assert loss_a == loss_b and loss_a > 0
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)
    assert stats_a and all(torch.equal(stats_a[n], stats_b[n]) for n in stats_a)
    # with dropout the order shows: the two forwards draw their masks in the other order
    assert step(False, 0.5)[0] != step(True, 0.5)[0]
    with pytest.raises(RecipeError, match="teacher_first"):
        load_recipe(RECIPES / "weak.yaml", ["training.teacher_first=true"])
