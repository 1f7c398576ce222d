"""Shards: contiguous runs of batches, so a batch (its images and its seed) is the same however a
job is sharded, and K merged shards equal one unsharded run (stages ``attack`` and ``adaptive``)."""

from __future__ import annotations


def shard_batches(n: int, batch_size: int, shard: int, n_shards: int) -> list[tuple[int, int, int]]:
    """``(global batch index, start, end)`` of the batches of shard ``shard`` of ``n_shards``."""
    if not 0 <= shard < n_shards:
        raise ValueError(f"shard {shard} is outside 0..{n_shards - 1}")
    batches = [(i, s, min(s + batch_size, n)) for i, s in enumerate(range(0, n, batch_size))]
    per, extra = divmod(len(batches), n_shards)  # the first `extra` shards take one batch more
    first = shard * per + min(shard, extra)
    return batches[first:first + per + (shard < extra)]
