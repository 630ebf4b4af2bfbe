"""Sweeps on a Dask LocalCluster (real worker processes): the same rows as a local sweep in
the deterministic mode, work spread over both workers, a failing recording reported as a
failed row without losing the others, the recognition cache counted."""

import numpy as np
import pytest

from spear_lab import explore
from spear_lab.explore.distributed import cached_replayers, recording_from_payload, recording_payload

distributed = pytest.importorskip("distributed")

SENTENCES = ["the weather is very nice today", "please call me back when you get home tonight"]


@pytest.fixture()
def cache_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SPEAR_LAB_CACHE", str(tmp_path / "cache"))
    return tmp_path


def test_payload_round_trip_checks_the_digest(cache_env):
    rec = explore.generate(SENTENCES[:1], lead_ms=200, tail_ms=300)
    p = recording_payload(rec)
    back = recording_from_payload(p)
    assert back.digest == rec.digest and back.wav().is_file()
    bad = dict(p, pcm=p["pcm"][:-2] + b"\x01\x00")
    with pytest.raises(ValueError, match="digest"):
        recording_from_payload(bad)


@pytest.mark.parametrize("backend", ["local", "stub"])
def test_cluster_sweep_equals_local_sweep(cache_env, backend):
    """``local``: the embedded server and the default engine; ``stub``: the stub transport."""
    recs = [explore.generate(SENTENCES, pauses_ms=[800], lead_ms=400, tail_ms=1500, name="a"),
            explore.generate(SENTENCES[::-1], pauses_ms=[500], lead_ms=300, tail_ms=1500, name="b")]
    # a recording without a sample rate: the worker cannot write it as a WAV, so its task fails
    broken = explore.Recording("broken", np.zeros(8000, np.int16), 0, [explore.Utterance("x")])
    cfgs = [explore.server_vad(300, 0.5, 300), explore.server_vad(900, 0.5, 300)]
    local = explore.sweep(recs, cfgs, progress=False, cache=False, deterministic=True, backend=backend,
                          recognition_cache=str(cache_env / "rec-local"))
    assert all(r["ok"] for r in local), [r["error"] for r in local]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        remote = explore.sweep(recs + [broken], cfgs, executor=client, progress=False, cache=False,
                               concurrency=1, backend=backend,
                               deterministic=True, recognition_cache=str(cache_env / "rec-cluster"))
        # each worker process made one host + server and reused it for all its tasks
        assert set(client.run(cached_replayers).values()) == {1}
    good = remote.where(ok=True)
    assert [(r["config"], r["recording"]) for r in good] == [(r["config"], r["recording"]) for r in local]
    assert good.comparable() == local.comparable()
    assert len(set(remote.column("worker"))) >= 2, remote.column("worker")
    assert len(remote.info["workers"]) >= 2
    failed = [r for r in remote if not r["ok"]]
    assert {r["recording"] for r in failed} == {"broken"} and len(failed) == len(cfgs)
    assert all("sampling rate" in r["error"] for r in failed), [r["error"] for r in failed]
    if backend == "local":  # every segment went through the recognition cache
        rc = remote.info["recognition_cache"]
        assert rc["misses"] > 0 and rc["hits"] + rc["misses"] == sum(r["segments"] for r in good)


def test_any_concurrent_futures_executor_works(cache_env, caplog):
    import concurrent.futures as cf
    import multiprocessing as mp

    rec = explore.generate(SENTENCES[:1], lead_ms=300, tail_ms=800)
    cfgs = [explore.server_vad(300), explore.server_vad(800)]
    local = explore.sweep(rec, cfgs, backend="stub", progress=False, cache=False, deterministic=True)
    caplog.set_level("INFO", logger="spear_lab.explore.progress")
    with cf.ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
        remote = explore.sweep(rec, cfgs, backend="stub", executor=pool, concurrency=1, progress=False,
                               cache=explore.RunCache(cache_env / "runs"), deterministic=True)
    assert remote.comparable() == local.comparable() and all(r["ok"] for r in remote)
    assert remote.info["executor"] == "ProcessPoolExecutor"
    # progress is reported as the tasks complete (the log display at this level)
    assert any("sweep 2/2" in m for m in caplog.messages), caplog.messages
    # the run cache lives on the client: a second sweep replays nothing
    again = explore.sweep(rec, cfgs, backend="stub", progress=False, deterministic=True,
                          cache=explore.RunCache(cache_env / "runs"))
    assert again.info["cache_hits"] == 2 and again.comparable() == local.comparable()


def test_the_jobs_of_a_recording_go_out_as_one_task_per_worker(cache_env):
    """8 configurations on 2 workers at concurrency 2: two tasks of 4 (each worker's
    Replayer keeps 2 runs going inside its task), not four tasks of 2 with a wait for the
    slowest run after each; 3 configurations: tasks of at least ``concurrency``."""
    import concurrent.futures as cf

    from spear_lab.explore.distributed import RemoteReplayer
    from spear_lab.explore.replay import Job

    class Pool:  # a two-worker executor that records each task's size and fails it
        _max_workers = 2

        def __init__(self):
            self.sizes = []

        def submit(self, fn, recording, configs, realtime, settings):
            self.sizes.append(len(configs))
            fut = cf.Future()
            fut.set_result({"runs": None, "error": "not run", "worker": "w1",
                            "recognition": {"hits": 0, "misses": 0}})
            return fut

    rec = explore.generate(SENTENCES[:1], lead_ms=200, tail_ms=300)
    for n, sizes in ((8, [4, 4]), (3, [2, 1]), (1, [1])):
        pool = Pool()
        jobs = [Job(rec, explore.server_vad(200 + 100 * i)) for i in range(n)]
        records = RemoteReplayer(pool, concurrency=2).run(jobs)
        assert pool.sizes == sizes
        assert [r.config for r in records] == [j.config.to_dict() for j in jobs]
        assert all(not r.ok and "not run" in r.error() for r in records)
