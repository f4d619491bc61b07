"""Checkpoint files: a killed or half-synced write is never taken for a checkpoint."""

import torch
from textclf.training.checkpoints import MANIFEST_FILE, WEIGHTS_FILE, CheckpointStore


def _model(value: float) -> torch.nn.Module:
    model = torch.nn.Linear(3, 2)
    torch.nn.init.constant_(model.weight, value)
    return model


def test_latest_complete_checkpoint_wins_and_old_ones_are_pruned(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    for step in (1, 2, 3):
        store.save(step, _model(step), {"step": step})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000000002", "step-000000003"]
    assert store.load_state(store.latest())["step"] == 3


def test_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(1, _model(1.0), {"step": 1})
    broken = store.save(2, _model(2.0), {"step": 2})
    weights = broken / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:10])  # as a partial S3 download would leave it
    assert store.latest().name == "step-000000001"
    restored = _model(0.0)
    store.load_weights(store.latest(), restored)
    assert torch.all(restored.weight == 1.0)


def test_leftover_temporary_directory_and_missing_manifest_are_ignored(tmp_path):
    store = CheckpointStore(tmp_path)
    (tmp_path / ".tmp-step-000000009-12345").mkdir()  # a write killed before its rename
    store.save(1, _model(1.0), {"step": 1})
    no_manifest = tmp_path / "step-000000005"
    no_manifest.mkdir()
    (no_manifest / WEIGHTS_FILE).write_bytes(b"x")
    assert store.latest().name == "step-000000001"
    assert not (tmp_path / ".tmp-step-000000009-12345").exists()
    assert (store.latest() / MANIFEST_FILE).exists()
