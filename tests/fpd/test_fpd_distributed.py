"""gather_distributed: 2 CPU processes (gloo) give the loss and gradients of the global batch."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dcase_fpd_plugin.branch import SOURCE_RW, SOURCE_SS, SOURCE_UL, Batch, ModelOutput
from dcase_fpd_plugin.fpd.branch import FPDBranch

B, T, C, D = 8, 6, 3, 5
SPLIT = [5, 3]  # clips per rank: unequal, to exercise the padding of all_gather
CONFIG = {"gather_distributed": True, "wps_start_epoch": 0, "projection_dim": 4, "distance": "ip"}


def global_inputs() -> tuple[ModelOutput, Batch]:
    """The same global batch on every process (fixed seed)."""
    gen = torch.Generator().manual_seed(123)
    source = torch.tensor([SOURCE_SS, SOURCE_RW, SOURCE_SS, SOURCE_UL, SOURCE_RW, SOURCE_SS, SOURCE_RW, SOURCE_SS])
    strong = (torch.rand(B, T, C, generator=gen) < 0.4).float() * (source == SOURCE_SS)[:, None, None]
    weak = torch.where((source == SOURCE_SS)[:, None], strong.amax(1), (torch.rand(B, C, generator=gen) < 0.6).float())
    frame_valid = torch.ones(B, T, dtype=torch.bool)
    frame_valid[2, -2:] = False
    batch = Batch(
        feats=torch.zeros(B, 4, T),
        strong=strong,
        has_strong=source == SOURCE_SS,
        weak=weak,
        has_weak=source != SOURCE_UL,
        source=source,
        frame_valid=frame_valid,
    )
    probs = torch.rand(B, T, C, generator=gen)
    output = ModelOutput(torch.randn(B, T, D, generator=gen), probs, probs.amax(1))
    return output, batch


def take(output: ModelOutput, batch: Batch, lo: int, hi: int) -> tuple[ModelOutput, Batch]:
    sub = {k: (v[lo:hi] if isinstance(v, torch.Tensor) else v) for k, v in batch.__dict__.items()}
    emb = output.embeddings[lo:hi].clone().requires_grad_(True)
    return ModelOutput(emb, output.frame_probs[lo:hi], output.clip_probs[lo:hi]), Batch(**sub)


def make_branch(gather: bool) -> FPDBranch:
    torch.manual_seed(0)  # identical projection weights everywhere
    return FPDBranch({**CONFIG, "gather_distributed": gather}, D, ["a", "b", "c"])


def worker(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        output, batch = global_inputs()
        lo = sum(SPLIT[:rank])
        local_output, local_batch = take(output, batch, lo, lo + SPLIT[rank])
        branch = make_branch(gather=True)
        result = branch(local_output, local_batch, epoch=0)
        result.loss.backward()
        weight_grad = branch.projection.weight.grad.clone()
        dist.all_reduce(weight_grad)  # what DDP does: average parameter gradients over ranks
        weight_grad /= world
        torch.save(
            {
                "loss": result.loss.detach(),
                "n_pos": result.logs["fpd/n_positive_pairs"],
                "n_neg": result.logs["fpd/n_negative_pairs"],
                "emb_grad": local_output.embeddings.grad,
                "weight_grad": weight_grad,
            },
            os.path.join(out_dir, f"rank{rank}.pt"),
        )
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed with gloo")
def test_gathered_loss_equals_single_process_on_the_global_batch(tmp_path):
    world = len(SPLIT)
    mp.spawn(worker, args=(world, free_port(), str(tmp_path)), nprocs=world, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(world)]

    # reference: one process, the concatenated batch, no gathering
    output, batch = global_inputs()
    output, batch = take(output, batch, 0, B)
    ref_branch = make_branch(gather=False)
    ref = ref_branch(output, batch, epoch=0)
    ref.loss.backward()
    assert ref.logs["fpd/n_positive_pairs"] > 0 and ref.logs["fpd/n_negative_pairs"] > 0

    for rank, res in enumerate(results):
        lo = sum(SPLIT[:rank])
        assert res["loss"].item() == pytest.approx(ref.loss.item(), rel=1e-5)
        assert res["n_pos"].item() == ref.logs["fpd/n_positive_pairs"].item()
        assert res["n_neg"].item() == ref.logs["fpd/n_negative_pairs"].item()
        # gradients reach the local embeddings: the global-batch gradient of this rank's
        # clips, scaled by the world size (undone by DDP's averaging)
        local_grad = res["emb_grad"]
        assert local_grad.abs().sum() > 0
        want = world * output.embeddings.grad[lo : lo + SPLIT[rank]]
        assert torch.allclose(local_grad, want, rtol=1e-4, atol=1e-6)
        # after DDP-style averaging, the parameter gradient is the single-process one
        assert torch.allclose(res["weight_grad"], ref_branch.projection.weight.grad, rtol=1e-4, atol=1e-6)
