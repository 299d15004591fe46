"""FeatureStats.all_reduce and FID.compute across two processes (gloo, CPU)."""

import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


def _data():
    g = torch.Generator().manual_seed(11)
    real = (torch.randn(701, 9, generator=g, dtype=torch.float64) * 2 + 300).float()
    fake = (torch.randn(402, 9, generator=g, dtype=torch.float64) + 301).float()
    return real, fake


def _worker(rank, world, init_file, out_dir):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        from ganfast.metrics import FID, FeatureStats

        real, fake = _data()
        # Uneven shares: rank 0 gets 600 real rows, rank 1 the other 101; all fake rows go to rank 1,
        # so rank 0 has no generated samples at all and still takes part.
        r = real[:600] if rank == 0 else real[600:]
        stats = FeatureStats()
        for batch in r.split(64):
            stats.update(batch)
        local_count = stats.count
        stats.all_reduce()
        fid = FID()
        fid.update_features(r, real=True)
        if rank == 1:
            fid.update_features(fake, real=False)
        value = fid.compute()  # synced: a collective
        assert fid.real.count == local_count  # the local statistics are untouched
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), mu=stats.mean().numpy(), sigma=stats.covariance().numpy(),
                 count=stats.count, fid=value)
    finally:
        dist.destroy_process_group()


def test_all_reduce_equals_statistics_of_everything(tmp_path):
    world = 2
    # spawn, not fork: a fork of a process whose OpenMP pool is running (any earlier test) can deadlock
    mp.spawn(_worker, args=(world, str(tmp_path / "init"), str(tmp_path)), nprocs=world, join=True)
    real, fake = _data()
    want_mu = real.double().mean(0).numpy()
    want_sigma = np.cov(real.double().numpy(), rowvar=False)
    from ganfast.metrics import frechet_distance

    want_fid = frechet_distance(want_mu, want_sigma, fake.double().mean(0), np.cov(fake.double().numpy(), rowvar=False))
    for rank in range(world):
        with np.load(tmp_path / f"rank{rank}.npz") as f:
            assert int(f["count"]) == 701
            np.testing.assert_allclose(f["mu"], want_mu, rtol=1e-14)
            np.testing.assert_allclose(f["sigma"], want_sigma, rtol=0, atol=1e-12 * np.abs(want_sigma).max())
            assert float(f["fid"]) == pytest.approx(want_fid, rel=1e-10)
