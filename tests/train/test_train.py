import dataclasses

import numpy as np
import pytest
import torch

from bench.config import load_run_config
from bench.train import augment_batch, fit, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow


def _cfg(**train):
    return load_run_config("smoke", [f"train.{k}={v}" for k, v in train.items()] + ["data.dataset=tiny"])


def test_training_is_bit_identical_for_one_seed(tiny_set):
    a = fit(_cfg(epochs=2), data=tiny_set)
    b = fit(_cfg(epochs=2), data=tiny_set)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items()):
        assert ka == kb and torch.equal(va, vb), ka
    assert a.metrics["accuracy"] == b.metrics["accuracy"] and np.array_equal(a.test_probs, b.test_probs)
    c = fit(_cfg(epochs=2, seed=1), data=tiny_set)
    assert not torch.equal(a.model.features[0].weight, c.model.features[0].weight)


def test_fit_learns_and_reports_table2(tmp_path, tiny_set_factory):
    from bench.report.classification import table2_row, write_classification_table

    tiny_set = tiny_set_factory(160)
    res = fit(_cfg(epochs=8, batch_size=16), data=tiny_set, out_dir=tmp_path)
    assert res.checkpoint == tmp_path / "checkpoint.pt" and res.checkpoint.is_file()
    row = table2_row(res.config.data.dataset, res.config.model.name, res.metrics)
    write_classification_table([row], tmp_path / "classification")  # what `bench train` writes beside it
    assert res.metrics["accuracy"] >= 0.75
    assert set(res.metrics) >= {"accuracy", "sensitivity", "specificity", "auc", "f1"}
    assert res.metrics["positive"] == "lesion"
    groups = np.asarray(tiny_set.groups)
    assert not set(groups[res.split.train]) & set(groups[res.split.test])
    md = (tmp_path / "classification.md").read_text()
    assert "accuracy %" in md and "tiny" in md
    assert (tmp_path / "classification.csv").read_text().startswith("dataset,model")
    assert res.images_per_second > 0


def test_checkpoint_round_trip_and_mismatch(tiny_set, tmp_path):
    res = fit(_cfg(epochs=1), data=tiny_set, out_dir=tmp_path)
    model, info = load_checkpoint(tmp_path / "checkpoint.pt")
    assert info["class_names"] == ["normal", "lesion"] and info["config"] == res.config
    x = tiny_set.images[:4]
    with torch.no_grad():
        assert torch.equal(model(x), res.model(x))
    # a checkpoint whose config does not match its weights
    wrong = dataclasses.replace(res.config, model=dataclasses.replace(res.config.model, width=0.25))
    save_checkpoint(tmp_path / "bad.pt", dataclasses.replace(res, config=wrong))
    with pytest.raises(ValueError, match="does not match the model its config describes: .*shape mismatch"):
        load_checkpoint(tmp_path / "bad.pt")


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    torch.save({"state_dict": {}, "config": {}, "payload": Evil()}, tmp_path / "evil.pt")
    with pytest.raises(ValueError, match="refused to load"):
        load_checkpoint(tmp_path / "evil.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="refused to load"):
        load_checkpoint(tmp_path / "junk.pt")


def test_diverging_training_fails_with_a_clear_message(tiny_set):
    with pytest.raises(RuntimeError, match="training diverged .* lower train.lr"):
        fit(_cfg(epochs=1, lr=1e30), data=tiny_set)


def test_augmentation_moves_mask_with_image():
    img = torch.zeros(4, 3, 32, 32)
    img[:, :, 4:10, 20:28] = 1.0
    mask = img[:, 0] > 0.5
    out, m = augment_batch(img, mask, torch.Generator().manual_seed(0))
    # where the mask is, the image is bright; outside it is dark (up to bilinear edges)
    assert out[:, 0][m].mean() > 0.9 and out[:, 0][~m].mean() < 0.05
    assert abs(int(m.sum()) - int(mask.sum())) < 0.2 * int(mask.sum())


def test_early_stopping_waits_for_min_epochs(tiny_set):
    stopped = fit(_cfg(epochs=6, patience=1, lr=1e-9), data=tiny_set)  # no progress: stops at once
    waited = fit(_cfg(epochs=6, patience=1, lr=1e-9, min_epochs=5), data=tiny_set)
    assert len(stopped.history) < 5 <= len(waited.history)


def test_cosine_schedule_anneals_the_rate_to_zero_over_all_epochs():
    from bench.config import TrainConfig
    from bench.train import lr_scheduler

    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = lr_scheduler(opt, TrainConfig(epochs=4, lr_schedule="cosine"), steps_per_epoch=5)
    rates = []
    for _ in range(20):
        opt.step()
        sched.step()
        rates.append(opt.param_groups[0]["lr"])
    assert rates[9] == pytest.approx(0.5e-3)  # half-way: half the rate
    assert rates[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert lr_scheduler(opt, TrainConfig(), steps_per_epoch=5) is None


def test_unknown_schedule_is_refused_before_training(tiny_set):
    with pytest.raises(ValueError, match="lr_schedule = 'step'.*'constant' or 'cosine'"):
        fit(_cfg(epochs=1, lr_schedule="step"), data=tiny_set)
