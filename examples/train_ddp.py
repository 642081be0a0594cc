"""Train a toy model with DDP on curated clips: the loader as a real job uses it.

    torchrun --standalone --nproc_per_node=2 examples/train_ddp.py OUTPUT --steps 20 --checkpoint ckpt.pt

Runs on CPU (gloo) or GPUs (nccl, one per rank).  Every rank builds the same
``ClipDataset`` after ``init_process_group`` (it reads rank and world size
from there), iterates a ``ClipLoader`` and checkpoints the model with
``dataset.state_dict()``.  Run it again with ``--checkpoint`` pointing at an
existing file to resume mid-epoch -- also on another number of ranks: the
rest of the epoch is split among the new ranks, nothing seen twice.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from curate.data import BucketConfig, ClipDataset, ClipLoader, DecodeOptions


class TinyVideoModel(nn.Module):
    """Predicts a clip's mean colour from a downsampled copy: enough to exercise gradients."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, kernel_size=3, padding=1)
        self.head = nn.Linear(8, 3)

    def forward(self, video: torch.Tensor) -> torch.Tensor:  # (B, T, C, H, W) float
        x = F.relu(self.conv(video.transpose(1, 2)))  # Conv3d wants (B, C, T, H, W)
        return self.head(x.mean(dim=(2, 3, 4)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", help="curate OUTPUT dir, its manifest.json, or a shard glob")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps to run (across epochs)")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers per rank")
    ap.add_argument("--checkpoint", type=Path, help="saved every --save-every steps; resumed from when it exists")
    ap.add_argument("--save-every", type=int, default=5)
    ap.add_argument("--record", type=Path, help="write the clip ids each rank trained on (JSON lines)")
    args = ap.parse_args()

    use_cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if use_cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if use_cuda else torch.device("cpu")

    ds = ClipDataset(  # after init_process_group: rank and world size come from there
        args.source,
        BucketConfig.single(height=32, width=32, num_frames=4, batch_size=2),
        decode=DecodeOptions(output="float", temporal="random", crop="random"),
        seed=1234,
    )
    model = DDP(TinyVideoModel().to(device), device_ids=[device.index] if use_cuda else None)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step = 0
    if args.checkpoint and args.checkpoint.exists():
        ckpt = torch.load(args.checkpoint, map_location=device, weights_only=False)
        model.module.load_state_dict(ckpt["model"])
        optim.load_state_dict(ckpt["optim"])
        ds.load_state_dict(ckpt["data"])  # same data and seed; the world size may differ
        step = ckpt["step"]
    loader = ClipLoader(ds, num_workers=args.workers, pin_memory=use_cuda, persistent_workers=args.workers > 0)
    log = args.record.with_suffix(f".rank{rank}.jsonl").open("a") if args.record else None

    while step < args.steps:
        for batch in loader:  # the dataset moves to the next epoch by itself
            video = batch["video"].to(device, non_blocking=True)
            target = video.mean(dim=(1, 3, 4))  # (B, C)
            weight = (~batch["repeated"]).float().to(device)  # padding samples do not count
            loss = (F.mse_loss(model(video), target, reduction="none").mean(dim=1) * weight).sum() / weight.sum().clamp(min=1)
            optim.zero_grad()
            loss.backward()  # DDP all-reduces: every rank has the same number of batches
            optim.step()
            step += 1
            if log:
                ids = [c for c, r in zip(batch["clip_id"], batch["repeated"].tolist()) if not r]
                log.write(json.dumps({"step": step, "epoch": batch["epoch"], "ids": ids}) + "\n")
            if rank == 0 and step % 5 == 0:
                print(f"step {step} epoch {batch['epoch']} loss {loss.item():.4f}", flush=True)
            if args.checkpoint and step % args.save_every == 0 and rank == 0:
                state = {"model": model.module.state_dict(), "optim": optim.state_dict(), "data": ds.state_dict(), "step": step}
                torch.save(state, args.checkpoint)
            if step >= args.steps:
                break
    if log:
        log.close()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
