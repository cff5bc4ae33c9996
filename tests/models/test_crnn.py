"""The DCASE 2023 baseline CRNN (``net.name: crnn``): shapes, size, MACs, attention pooling, registration."""

import copy
from pathlib import Path

import pytest
import torch

from dcase_fpd_plugin.branch import ModelOutput
from dcase_fpd_plugin.models import CRNN, build_model
from dcase_fpd_plugin.report.complexity import count_macs, count_parameters
from dcase_fpd_plugin.models.crnn import minmax_per_clip
from dcase_fpd_plugin.recipe.schema import DEFAULTS, RecipeError
from dcase_fpd_plugin.recipe.loading import load_recipe

REPO = Path(__file__).resolve().parents[2]
DCASE_PARAMS = 1.11e6  # DESED_task README, DCASE 2023 baseline
DCASE_MACS_10S = 930.902e6  # "Total number of multiply-accumulate operation (MACs) for 10 seconds"
N_IN_10S = 1 + 160000 // 256  # 626 STFT frames


@pytest.fixture(scope="module")
def crnn():
    torch.manual_seed(0)
    return CRNN(128, 10)


def test_shapes_for_10_s(crnn):
    torch.set_num_threads(1)
    crnn.eval()
    with torch.no_grad():
        out = crnn(torch.randn(2, 128, N_IN_10S))
    assert isinstance(out, ModelOutput)
    assert crnn.output_frames(N_IN_10S) == 156 and crnn.time_pooling == 4 and crnn.embed_dim == 256
    assert out.embeddings.shape == (2, 156, 256)
    assert out.frame_probs.shape == (2, 156, 10) and out.clip_probs.shape == (2, 10)
    assert float(out.frame_probs.min()) >= 0 and float(out.frame_probs.max()) <= 1
    # clip probabilities are attention-weighted means of the frame probabilities
    assert torch.all(out.clip_probs <= out.frame_probs.max(1).values + 1e-6)
    assert torch.all(out.clip_probs >= out.frame_probs.min(1).values - 1e-6)


@pytest.mark.parametrize("n_in", [251, 100, 17])
def test_any_clip_length(crnn, n_in):
    crnn.eval()
    out = crnn(torch.randn(1, 128, n_in))
    assert out.frame_probs.shape[1] == crnn.output_frames(n_in) == n_in // 4


def test_parameters_and_macs_match_dcase(crnn):
    torch.set_num_threads(1)
    n_params = count_parameters(crnn)
    assert n_params == 1_112_420
    assert abs(n_params - DCASE_PARAMS) / DCASE_PARAMS < 0.05
    macs = count_macs(crnn, DEFAULTS["feats"])  # 10 s: 626 frames; conv + linear + GRU (FLOPs / 2)
    assert abs(macs - DCASE_MACS_10S) / DCASE_MACS_10S < 0.05, macs
    # the GRU is in the count: without it the total would be ~77 M lower
    gru = 156 * 2 * 3 * ((128 + 128) * 128 + (256 + 128) * 128)
    assert macs > 701_927_424 + gru  # conv alone is 701.9 M


def desed_task_instance_minmax(tensor, dims=(1, 2), eps=1e-8):
    """Reference: DESED_task's ``TorchScaler("instance", "minmax", dims)`` formula (utils/scaler.py
    at f7dc296), written out here from its documented formula."""
    lo = torch.amin(tensor, dim=dims, keepdim=True)
    hi = torch.amax(tensor, dim=dims, keepdim=True)
    return (tensor - lo) / (hi - lo + eps)


def test_minmax_scaling_is_desed_tasks_instance_scaler():
    x = torch.randn(3, 8, 20) * torch.tensor([1.0, 5.0, 50.0])[:, None, None] + 7
    y = minmax_per_clip(x)
    assert torch.equal(y, desed_task_instance_minmax(x))
    assert torch.allclose(y.amin(dim=(1, 2)), torch.zeros(3), atol=1e-6)
    assert torch.allclose(y.amax(dim=(1, 2)), torch.ones(3), atol=1e-6)


def test_crnn_scales_its_input_as_desed_task_by_default():
    """The default recipe's CRNN feeds DESED_task's [0, 1] scaling to its first convolution;
    minmax_signed keeps the old [-1, 1] for old checkpoints."""
    from dcase_fpd_plugin.models import build_model
    from dcase_fpd_plugin.recipe.loading import load_recipe

    net = load_recipe("dcase2023_baseline")["net"]
    model = build_model(net, {"n_mels": 128}, 10).eval()
    x = torch.randn(2, 128, 40) * 20 - 30
    seen = []
    model.cnn[0].conv.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    model(x)
    expected = desed_task_instance_minmax(x).transpose(1, 2).unsqueeze(1)  # (B, 1, T_in, F)
    assert torch.equal(seen[0], expected)
    signed = build_model({**net, "crnn_input_norm": "minmax_signed"}, {"n_mels": 128}, 10)
    assert torch.allclose(signed.normalize(x), expected.squeeze(1).transpose(1, 2) * 2 - 1, atol=1e-6)


def test_frame_valid_masks_attention(crnn):
    crnn.eval()
    x = torch.randn(1, 128, 200)
    t = crnn.output_frames(200)
    valid = torch.zeros(1, t, dtype=torch.bool)
    valid[:, :10] = True
    out = crnn(x, valid)
    # only the valid frames matter for the clip probabilities: changing the rest changes nothing
    probs = out.frame_probs.detach()
    w = torch.softmax(crnn.dense_softmax(out.embeddings), -1).clamp(1e-7, 1)[:, :10]  # eval: no dropout
    expected = (probs[:, :10] * w).sum(1) / w.sum(1)
    assert torch.allclose(out.clip_probs, expected.clamp(1e-7, 1 - 1e-7), atol=1e-6)
    with pytest.raises(ValueError, match="frame_valid has 3 frames"):
        crnn(x, torch.ones(1, 3, dtype=torch.bool))


def test_time_attention_is_softmax_over_time():
    torch.manual_seed(0)
    m = CRNN(128, 4, attention="time").eval()
    out = m(torch.randn(2, 128, 64))
    w = torch.softmax(m.dense_softmax(out.embeddings), dim=1)
    assert torch.allclose(out.clip_probs, (w * out.frame_probs).sum(1).clamp(1e-7, 1 - 1e-7), atol=1e-6)


def test_build_from_recipe_and_bad_values(tmp_path):
    net = dict(DEFAULTS["net"], name="crnn")
    model = build_model(net, DEFAULTS["feats"], 10)
    assert isinstance(model, CRNN) and count_parameters(model) == 1_112_420
    with pytest.raises(ValueError, match="feats.n_mels=64"):
        build_model(net, dict(DEFAULTS["feats"], n_mels=64), 10)
    with pytest.raises(RecipeError, match="net.crnn_pooling"):
        load_recipe(None, ["net.name=crnn", "net.crnn_pooling=[[2, 2]]"])
    with pytest.raises(RecipeError, match="net.crnn_attention"):
        load_recipe(None, ["net.crnn_attention=frames"])
    with pytest.raises(RecipeError, match="net.name"):
        load_recipe(None, ["net.name=transformer"])


def _saved_bytes(model, x):
    seen, total = set(), [0]

    def pack(t):
        key = t.untyped_storage().data_ptr()
        if key not in seen:
            seen.add(key)
            total[0] += t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    return total[0], out


@pytest.mark.parametrize("momentum", [0.99, 0.1, None])  # None: BatchNorm's cumulative average
def test_checkpointed_blocks_give_the_same_step_and_keep_less(momentum):
    """net.crnn_checkpoint_blocks: same outputs, gradients, BatchNorm running statistics (not updated
    twice by the recomputation) and dropout masks, and fewer bytes kept for the backward pass."""
    torch.manual_seed(0)
    plain = CRNN(64, 5, filters=(8, 16, 16), pooling=((2, 2), (2, 2), (1, 2)), rnn_hidden=16, bn_momentum=momentum)
    ckpt = copy.deepcopy(plain)
    ckpt.checkpoint_blocks = 2
    x = torch.randn(4, 64, 100) * 10
    kept = []
    for m in (plain, ckpt):
        m.train()
        torch.manual_seed(1)
        n, out = _saved_bytes(m, x)
        kept.append(n)
        (out.frame_probs.sum() + out.clip_probs.sum()).backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.equal(a.grad, b.grad), name
    for (name, a), b in zip(plain.named_buffers(), ckpt.buffers()):
        assert torch.equal(a, b), name
    assert all(m.momentum == momentum for m in ckpt.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert kept[1] < 0.7 * kept[0]
    with torch.no_grad():  # the teacher's and inference's passes: nothing to recompute
        ckpt.eval()
        plain.eval()
        assert torch.equal(ckpt(x).frame_probs, plain(x).frame_probs)


@pytest.mark.parametrize("value", [-1, 8, 1.5, True])
def test_checkpoint_blocks_out_of_range_refused(value):
    with pytest.raises(RecipeError, match="net.crnn_checkpoint_blocks"):
        load_recipe(REPO / "recipes" / "dcase2023_baseline.yaml", [f"net.crnn_checkpoint_blocks={value}"])


def test_bench_memory_count_leaves_no_tensor_alive():
    """benchmarks/bench_memory.py's saved_bytes counts what the forward keeps for backward and then lets
    it go: a saved output packed as itself held its own grad_fn, a cycle the collector cannot see, and
    every saved tensor outlived the count (2.3 GB on the H100, inside each peak measured after it)."""
    import gc
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_memory", REPO / "benchmarks" / "bench_memory.py")
    bench_memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_memory)

    def live_bytes():
        gc.collect()  # type(): isinstance() would touch deprecated objects (torch.distributed.reduce_op) and warn
        return sum(o.untyped_storage().nbytes() for o in gc.get_objects()
                   if issubclass(type(o), torch.Tensor))

    torch.manual_seed(0)
    model = CRNN(64, 5, filters=(8, 16, 16), pooling=((2, 2), (2, 2), (1, 2)), rnn_hidden=16)
    x = torch.randn(4, 64, 100) * 10
    before = live_bytes()
    counted = bench_memory.saved_bytes(model, x, bf16=False)
    assert sum(counted.values()) > 10 * x.untyped_storage().nbytes()  # the forward kept its activations
    assert live_bytes() - before < 0.05 * sum(counted.values())  # and none of them outlives the count


def test_checkpoints_saved_before_0_2_keep_their_old_scaling(tmp_path, demo_data):
    """A CRNN checkpoint without the fidelity mark was trained on [-1, 1] inputs: it loads with
    minmax_signed; resuming it under minmax is refused by train() before anything is written (and
    so is resuming a new checkpoint under another scaling); new checkpoints carry the mark."""
    from dcase_fpd_plugin.data.demo import demo_overrides
    from dcase_fpd_plugin.recipe.schema import RecipeError
    from dcase_fpd_plugin.recipe.loading import load_recipe
    from dcase_fpd_plugin.training.task import FIDELITY, FIDELITY_KEY, SEDTask, load_task
    from dcase_fpd_plugin.training.runs import train

    exp = tmp_path / "run"
    recipe = load_recipe("dcase2023_baseline", demo_overrides(demo_data, tmp_path / "cache") + [
        "training.mean_teacher=false", "training.batch_size=[12, 12, 0]", f"training.exp_dir={exp}"])
    task = SEDTask(recipe)
    state = {"hyper_parameters": {"recipe": task.recipe}, "state_dict": task.state_dict()}
    torch.save(state, tmp_path / "old.ckpt")
    assert load_task(tmp_path / "old.ckpt").model.input_norm == "minmax_signed"
    saved: dict = {}
    task.on_save_checkpoint(saved)
    assert saved == {FIDELITY_KEY: FIDELITY}
    torch.save({**state, **saved}, tmp_path / "new.ckpt")
    assert load_task(tmp_path / "new.ckpt").model.input_norm == "minmax"

    (exp / "checkpoints").mkdir(parents=True)
    for ckpt, recipe_norm, trained_norm in (("old.ckpt", "minmax", "minmax_signed"), ("new.ckpt", "minmax_signed", "minmax")):
        (exp / "checkpoints" / "last.ckpt").write_bytes((tmp_path / ckpt).read_bytes())
        wanted = {**recipe, "net": {**recipe["net"], "crnn_input_norm": recipe_norm}}
        with pytest.raises(RecipeError, match=f"resume it with net.crnn_input_norm={trained_norm}"):
            train(wanted, resume=True)
        assert sorted(p.name for p in exp.iterdir()) == ["checkpoints"]  # nothing written


def test_pretrained_embeddings_are_pooled_to_the_cnn_frames_and_fused_before_the_gru():
    """DESED_task 2024's pool1d fusion: (B, D_e, T_e) embeddings average-pooled to the CNN's T frames,
    concatenated with its output, projected back to its width; the outputs depend on them."""
    torch.manual_seed(0)
    model = CRNN(128, 5, rnn_hidden=16, rnn_layers=1, embedding_dim=12).eval()
    feats = torch.randn(2, 128, 626)
    emb = torch.randn(2, 12, 496)  # BEATs' 496 tokens per 10 s
    out = model(feats, embeddings=emb)
    assert out.frame_probs.shape == (2, 156, 5) and out.embeddings.shape == (2, 156, 32)
    assert model.cat_tf.in_features == 128 + 12 and model.cat_tf.out_features == 128
    other = model(feats, embeddings=emb + 1.0)
    assert not torch.allclose(out.frame_probs, other.frame_probs)
    # the pooled sequence is adaptive_avg_pool1d's: frame t averages tokens [floor(t*496/156), ceil((t+1)*496/156))
    x = torch.zeros(1, 156, 128)
    captured = {}
    model.cat_tf.register_forward_hook(lambda m, i, o: captured.setdefault("in", i[0]))
    model.fuse(x, emb[:1])
    pooled = captured["in"][0, :, 128:]  # (T, D_e)
    t = 100
    a, b = (t * 496) // 156, -((-(t + 1) * 496) // 156)
    torch.testing.assert_close(pooled[t], emb[0, :, a:b].mean(-1))
    with pytest.raises(ValueError, match="the batch has none"):
        model(feats)
    with pytest.raises(ValueError, match=r"embeddings must be \(B, 12, T_e\)"):
        model(feats, embeddings=torch.randn(2, 7, 496))
    with pytest.raises(ValueError, match="takes no pretrained embeddings"):
        CRNN(128, 5, rnn_hidden=16, rnn_layers=1)(feats, embeddings=emb)


def test_class_mask_removes_classes_from_the_attention_and_the_outputs():
    """DESED_task 2024's classes_mask: an unannotated class takes no attention weight and outputs 0; the
    annotated classes' clip probabilities then come from a softmax over them only."""
    torch.manual_seed(0)
    model = CRNN(128, 4, rnn_hidden=16, rnn_layers=1).eval()
    feats = torch.randn(2, 128, 626)
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    full, masked = model(feats), model(feats, class_mask=mask)
    torch.testing.assert_close(masked.frame_probs[0], full.frame_probs[0])
    torch.testing.assert_close(masked.clip_probs[0], full.clip_probs[0])
    assert torch.all(masked.frame_probs[1, :, 2:] == 0) and torch.all(masked.clip_probs[1, 2:] <= 1e-7)
    torch.testing.assert_close(masked.frame_probs[1, :, :2], full.frame_probs[1, :, :2])
    # clip 1's clip probabilities: attention from a softmax over its 2 annotated classes only
    logits = model.dense_softmax(masked.embeddings[1])[:, :2]  # (T, 2)
    w = torch.softmax(logits, dim=-1).clamp(1e-7, 1.0)
    expected = (masked.frame_probs[1, :, :2] * w).sum(0) / w.sum(0)
    torch.testing.assert_close(masked.clip_probs[1, :2], expected)
    w_all = torch.softmax(model.dense_softmax(masked.embeddings[1]), dim=-1).clamp(1e-7, 1.0)[:, :2]
    assert not torch.equal(w, w_all)
