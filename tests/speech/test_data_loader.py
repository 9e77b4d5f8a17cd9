"""The on-the-fly data loader: peak memory independent of the manifest's length, length-grouped batches that
are the same for the same seed, and clips found unusable in worker processes reported back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from asr_analogy.io.audio import write_wav
from asr_analogy.io.manifest import write_manifest
from asr_analogy.speech.data import LengthGroupedSampler, load_manifest_dataset

_ITERATE = textwrap.dedent("""
    import gc, json, resource, sys
    import numpy as np, torch
    from asr_analogy.speech.data import LengthGroupedSampler, load_manifest_dataset

    ds, _ = load_manifest_dataset(sys.argv[1], progress=False)
    batches = torch.utils.data.BatchSampler(LengthGroupedSampler(ds.durations, 16, seed=0), 16, drop_last=False)
    def collate(rows):  # pad to the longest clip, as the collators do
        out = np.zeros((len(rows), max(len(r["audio"]) for r in rows)), np.float32)
        for i, r in enumerate(rows):
            out[i, : len(r["audio"])] = r["audio"]
        return torch.from_numpy(out)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=batches, collate_fn=collate, num_workers=2)
    seen = sum(len(b) for b in loader)
    del loader; gc.collect()
    kb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"seen": seen, "peak_mib": kb / 1024}))
""")


def test_peak_memory_does_not_grow_with_the_manifest(tmp_path):
    # 1-s clips (hard links to 8 distinct tones): 4000 of them decoded and held would take 4000 × 64 KB = 250 MiB.
    for k in range(8):
        write_wav(tmp_path / f"tone{k}.wav", 0.3 * np.sin(2 * np.pi * (200 + 50 * k) * np.arange(16000) / 16000))
    peaks = {}
    for n in (200, 4000):
        recs = []
        for i in range(n):
            path = tmp_path / f"n{n}_{i}.wav"
            os.link(tmp_path / f"tone{i % 8}.wav", path)
            recs.append({"audio_filepath": str(path), "text": f"clip {i}", "duration": 1.0})
        manifest = write_manifest(recs, tmp_path / f"m{n}.jsonl")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
        out = subprocess.run([sys.executable, "-c", _ITERATE, str(manifest)], capture_output=True, text=True,
                             env=env, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["seen"] == n
        peaks[n] = result["peak_mib"]
    assert peaks[4000] - peaks[200] < 30.0, peaks  # 20× the clips; holding them would add ~240 MiB


def test_batches_hold_clips_of_similar_duration():
    # One bucket of 4 batches of 2: sorted 9 8 | 7 6 | 4 3 | 2 1, the batches shuffled.
    durations = [1, 9, 2, 8, 3, 7, 4, 6]
    sampler = LengthGroupedSampler(durations, 2, seed=0, bucket_batches=4)
    got = [sorted(durations[i] for i in batch) for batch in sampler.batches()]
    assert sorted(got) == [[1, 2], [3, 4], [6, 7], [8, 9]]
    assert sorted(sampler) == list(range(8))
    # With one batch per bucket there is no grouping: some batch pairs clips of unlike duration.
    ungrouped = LengthGroupedSampler(durations, 2, seed=0, bucket_batches=1)
    assert any(max(durations[i] for i in b) - min(durations[i] for i in b) > 1 for b in ungrouped.batches())


def test_padding_falls_and_the_order_is_fixed_by_seed_and_epoch():
    rng = np.random.default_rng(0)
    durations = rng.uniform(0.5, 10.0, size=1000)
    sampler = LengthGroupedSampler(durations, 8, seed=3)

    def padding(batches):  # padded seconds / real seconds
        return sum(len(b) * durations[b].max() - durations[b].sum() for b in map(np.array, batches)) / durations.sum()

    random_batches = np.array_split(rng.permutation(1000), 125)
    assert padding(sampler.batches()) < 0.05 < 0.5 < padding(random_batches)
    first = list(sampler)
    assert list(LengthGroupedSampler(durations, 8, seed=3)) == first
    assert list(LengthGroupedSampler(durations, 8, seed=4)) != first
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first and sorted(second) == list(range(1000))
    sampler.set_epoch(0)
    assert list(sampler) == first


def test_short_batch_comes_last():
    sampler = LengthGroupedSampler([5, 1, 4, 2, 3], 2, seed=1, bucket_batches=10)
    batches = sampler.batches()
    assert [len(b) for b in batches] == [2, 2, 1] and batches[-1] == [1]  # the shortest clip, index 1


def test_clips_found_unusable_in_workers_reach_the_final_report(tmp_path):
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    recs = []
    for i in range(6):
        write_wav(tmp_path / f"c{i}.wav", np.zeros(8000) if i in (2, 4) else tone)
        recs.append({"audio_filepath": str(tmp_path / f"c{i}.wav"), "text": f"t{i}", "duration": 0.5})
    manifest = write_manifest(recs, tmp_path / "m.jsonl")
    ds, loaded = load_manifest_dataset(manifest, progress=False, skip_log=tmp_path / "log" / "skips.jsonl")
    assert loaded.n_kept == 6
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=2, collate_fn=lambda rows: rows)
    texts = [r["text"] for batch in loader for r in batch]
    assert texts == ["t0", "t1", "t3", "t3", "t5", "t5"]  # a silent clip is replaced by the next usable one
    report = ds.final_report()
    assert [(s["index"], s["reason"]) for s in report.skipped] == [(2, "silent"), (4, "silent")]
    assert report.n_kept == 4 and report.kept_seconds == pytest.approx(2.0)
    assert loaded.n_kept == 6  # the loading report itself is left as it was


@pytest.mark.parametrize("cores, workers", [(None, 0), (1, 0), (2, 1), (4, 3), (16, 4)])
def test_default_workers_leave_one_core_for_training(monkeypatch, cores, workers):
    from asr_analogy.speech import train

    monkeypatch.setattr(train.os, "cpu_count", lambda: cores)
    assert train.default_num_workers() == workers
