import torch

from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SS, Batch
from dcase_fpd_plugin.recipe.loading import load_recipe
from dcase_fpd_plugin.training.task import SEDTask


def small_recipe(*extra):
    return load_recipe(None, ["feats.n_mels=32", "feats.clip_s=2.0", "net.channels=[8, 8, 8]",
                              "net.freq_pool=[2, 2, 8]", "data.classes=[a, b, c]", *extra])


def random_batch(task, B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    T, C = task.n_frames, len(task.classes)
    strong = (torch.rand(B, T, C, generator=g) > 0.7).float()
    return Batch(
        feats=torch.randn(B, 32, 126, generator=g),
        strong=strong,
        has_strong=torch.tensor([True, True, False, False]),
        weak=(strong.amax(1) > 0).float(),
        has_weak=torch.ones(B, dtype=torch.bool),
        source=torch.tensor([SOURCE_SS, SOURCE_SS, SOURCE_RW, SOURCE_RW]),
        frame_valid=torch.ones(B, T, dtype=torch.bool),
        filenames=[f"{i}.wav" for i in range(B)],
    )


def test_shapes_and_frame_rate():
    r = small_recipe()
    task = SEDTask(r)
    assert task.n_frames == 126 // 4 and abs(task.frame_hop_s - 256 * 4 / 16000) < 1e-12
    out = task(torch.randn(3, 32, 126))
    assert out.embeddings.shape == (3, task.n_frames, 8)
    assert out.frame_probs.shape == (3, task.n_frames, 3) and out.clip_probs.shape == (3, 3)
    assert torch.all((out.clip_probs > 0) & (out.clip_probs < 1))


def test_time_pool_one_keeps_stft_rate():
    r = small_recipe("net.time_pool=[1, 1, 1]", "feats.hop_length=255")
    task = SEDTask(r)
    assert task.n_frames == 1 + 32000 // 255


def test_attention_ignores_padding():
    from dcase_fpd_plugin.models.pooling import AttentionPoolingHead

    torch.manual_seed(0)
    head = AttentionPoolingHead(8, 3)
    h = torch.randn(2, 20, 8)  # (B, T, D)
    valid = torch.zeros(2, 20, dtype=torch.bool)
    valid[:, :12] = True
    _, clip = head(h, valid)
    h2 = h.clone()
    h2[:, 12:] = 100 * torch.randn(2, 8, 8)  # only padded frames change
    _, clip2 = head(h2, valid)
    assert torch.allclose(clip, clip2)
    _, clip3 = head(h2)  # without the mask the padding would leak in
    assert not torch.allclose(clip, clip3)


def test_weak_baseline_uses_no_strong_labels():
    task = SEDTask(small_recipe())
    batch = random_batch(task)
    torch.manual_seed(0)
    task.train()
    l1 = task.weak_loss(task(batch.feats).clip_probs, batch)
    shuffled = Batch(**{**batch.__dict__, "strong": torch.rand_like(batch.strong)})
    torch.manual_seed(0)
    l2 = task.weak_loss(task(shuffled.feats).clip_probs, shuffled)
    assert torch.equal(l1, l2)
    assert len(task.branches) == 0


def test_training_lowers_weak_loss():
    torch.manual_seed(0)
    task = SEDTask(small_recipe())
    batch = random_batch(task)
    opt = torch.optim.Adam(task.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = task.weak_loss(task(batch.feats).clip_probs, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_validation_scores_treat_undefined_metrics_as_zero():
    from dcase_fpd_plugin.training.selection import validation_scores

    logs = validation_scores({"event_f1": None, "segment_f1": None, "tagging_f1": 0.25, "intersection_f1": None},
                             "val")
    assert logs == {"val/event_f1": 0.0, "val/segment_f1": 0.0, "val/tagging_f1": 0.25, "val/intersection_f1": 0.0,
                    "val/obj": 0.25}


def _last_conv(task):
    return [m for m in task.model.modules() if isinstance(m, torch.nn.Conv2d)][-1]


def test_channels_last_changes_the_layout_not_the_numbers():
    torch.manual_seed(0)
    plain = SEDTask(small_recipe())
    torch.manual_seed(0)
    fast = SEDTask(small_recipe("training.channels_last=true"))
    assert _last_conv(fast).weight.is_contiguous(memory_format=torch.channels_last)
    assert not _last_conv(plain).weight.is_contiguous(memory_format=torch.channels_last)
    batch = random_batch(plain)
    a, b = plain(batch.feats), fast(batch.feats)
    torch.testing.assert_close(a.frame_probs, b.frame_probs, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(a.clip_probs, b.clip_probs, rtol=1e-4, atol=1e-5)
    for task in (plain, fast):
        task.weak_loss(task(batch.feats).clip_probs, batch).backward()
    torch.testing.assert_close(_last_conv(fast).weight.grad, _last_conv(plain).weight.grad, rtol=1e-3, atol=1e-5)
