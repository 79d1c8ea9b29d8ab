"""Cascading randomisation test: stages, verdicts, and the given model left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bench.metrics import randomisation_stages, randomisation_test
from bench.metrics.sanity import map_similarity
from bench.models import create_model

COLUMNS = ["stage", "stage_index", "spearman", "ssim", "baseline_spearman", "baseline_ssim", "passed"]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models: one thread is faster, and far faster when other jobs share the cores."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def ff():
    torch.manual_seed(0)
    return create_model("ff_vgg19", 2, width=0.0625, head_units=16).eval()


def test_ff_vgg19_stages_head_then_blocks_from_the_top(ff):
    stages = randomisation_stages(ff)
    assert [s for s, _ in stages] == ["head", "block5", "block4", "block3", "block2", "block1"]
    mods = dict(stages)
    assert set(mods["head"]) == {"bn3", "bn4", "head.0", "head.2", "head.4"}
    assert mods["block5"] == ["features.28", "features.30", "features.32"]  # block5_conv1..conv3
    assert mods["block1"] == ["features.0", "features.2"]
    every = [n for _, ms in stages for n in ms]
    owners = [n for n, m in ff.named_modules() if any(True for _ in m.parameters(recurse=False))]
    assert sorted(every) == sorted(owners)  # each weight randomised exactly once


def test_vgg19_and_generic_stages():
    vgg = create_model("vgg19", 2, width=0.0625, head_units=8)
    names = [s for s, _ in randomisation_stages(vgg)]
    assert names == ["head", "block5", "block4", "block3", "block2", "block1"]
    seq = nn.Sequential()
    seq.add_module("stem", nn.Conv2d(3, 4, 3))
    seq.add_module("act", nn.ReLU())
    seq.add_module("fc", nn.Linear(4, 2))
    assert randomisation_stages(seq) == [("fc", ["fc"]), ("stem", ["stem"])]


def _weights_only_maps(model, images, targets):
    """Maps that depend on the weights and not on the image: unrelated images look alike."""
    seed = int(abs(sum(float(p.detach().sum()) for p in model.parameters())) * 1e6) % (2**31)
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, *images.shape[-2:], generator=g).expand(images.shape[0], -1, -1)


def _image_only_maps(model, images, targets):
    """An edge detector: ignores the model entirely (the failure Adebayo et al. describe)."""
    return (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().sum(1)[:, :, :]


def test_weight_dependent_method_passes_image_only_method_fails(ff):
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    good = randomisation_test(ff, images, 1, _weights_only_maps)
    assert set(COLUMNS) <= set(good.columns)
    assert good["stage"].tolist() == ["trained", "head", "block5", "block4", "block3", "block2", "block1"]
    assert good["stage_index"].tolist() == list(range(7))
    assert good.loc[0, "spearman"] == pytest.approx(1.0) and not good.loc[0, "passed"]
    assert good["passed"].iloc[1:].all() and good.attrs["passed"]
    bad = randomisation_test(ff, images, 1, _image_only_maps)
    np.testing.assert_allclose(bad["spearman"], 1.0)
    assert not bad["passed"].any() and not bad.attrs["passed"]


def test_given_model_is_never_modified_nor_run(ff):
    ff.train()
    before = {k: v.clone() for k, v in ff.state_dict().items()}
    calls = []
    # hooks are deep-copied along with the model: record which module object ran
    handle = ff.register_forward_hook(lambda mod, *a: calls.append(mod is ff))
    try:
        randomisation_test(ff, torch.rand(2, 3, 32, 32), 0, lambda m, x, t: m(x)[:, :1, None].expand(-1, 32, 32))
    finally:
        handle.remove()
        ff.eval()
    assert calls and not any(calls)  # the copies ran, the given model did not
    for k, v in ff.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_seed_makes_it_reproducible_and_global_rng_is_restored(ff):
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))

    def logit_maps(model, x, t):
        return model(x)[:, :1, None].expand(-1, 32, 32) * x.mean(1)

    state = torch.get_rng_state()
    a = randomisation_test(ff, images, 0, logit_maps, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = randomisation_test(ff, images, 0, logit_maps, seed=3)
    np.testing.assert_array_equal(a["spearman"], b["spearman"])


def test_string_method_goes_through_explain(ff):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    df = randomisation_test(ff, images, [0, 1], "grad_cam")
    assert len(df) == 7 and df.attrs["method"] == "grad_cam"
    edge = randomisation_test(ff, images, [0, 1], "edge")  # model-independent baseline method
    assert not edge["passed"].any()


def test_map_similarity_values():
    a = np.random.default_rng(0).random((3, 8, 8))
    sp, ss = map_similarity(a, a)
    np.testing.assert_allclose(sp, 1.0)
    np.testing.assert_allclose(ss, 1.0)
    sp, _ = map_similarity(a, -a)
    np.testing.assert_allclose(sp, -1.0)
    sp, ss = map_similarity(a, np.zeros_like(a))  # constant map: rank correlation undefined
    assert np.isnan(sp).all()


def test_needs_two_images(ff):
    with pytest.raises(ValueError, match="B >= 2"):
        randomisation_test(ff, torch.rand(1, 3, 32, 32), 0, _weights_only_maps)
