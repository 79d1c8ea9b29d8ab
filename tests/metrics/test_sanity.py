"""Cascading randomisation test: stages, the verdict rule, the bootstrap, and the given model left alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from bench.metrics import randomisation_stages, randomisation_test
from bench.metrics.sanity import (
    BAR, NEVER, SIMILARITIES, map_similarity, normalised_similarity, sanity_verdict, stage_table,
)
from bench.models import create_model

STAGES = ["trained", "head", "block5", "block4", "block3", "block2", "block1"]
COLUMNS = ["stage", "stage_index", "modules", *SIMILARITIES, "n", "floor", "normalised", "normalised_ci_low",
           "normalised_ci_high", "changed"]


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


@pytest.fixture(scope="module")
def images():
    return torch.randn(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def test_ff_vgg19_stages_head_then_blocks_from_the_top(ff):
    stages = randomisation_stages(ff)
    assert [s for s, _ in stages] == STAGES[1:]
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


# --- three "methods" whose dependence on the weights is known by construction ---------------------------


def _ignores_weights(model, images, targets):
    """An edge detector: the map is the same whatever the weights (what Adebayo et al. warn about)."""
    return (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().sum(1)


def _head_only(model, images, targets):
    """The input's channels mixed by the head's weights for the target: depends on the head alone."""
    w = model.head[-1].weight[int(targets), : images.shape[1]]
    return torch.einsum("c,bchw->bhw", w, images)


def _first_conv_only(model, images, targets):
    """The first conv's response: depends on block1 alone, like Guided Backprop's edges."""
    return model.features[0](images).abs().sum(1)


def test_a_map_that_ignores_the_weights_fails_at_the_first_stage(ff, images):
    df = randomisation_test(ff, images, 1, _ignores_weights)
    assert list(df.columns) == COLUMNS
    assert df["stage"].tolist() == STAGES and df["stage_index"].tolist() == list(range(7))
    np.testing.assert_allclose(df["spearman_abs"], 1.0)
    assert df["floor"].iloc[0] == pytest.approx(1.0)
    np.testing.assert_allclose(df[["normalised", "normalised_ci_low", "normalised_ci_high"]], 1.0)
    assert not df["changed"].any()
    assert df.attrs["passed"] is False and df.attrs["first_changed_stage"] == NEVER


def test_a_map_of_the_head_weights_passes_at_the_first_stage(ff, images):
    df = randomisation_test(ff, images, 1, _head_only)
    assert df.loc[0, "normalised"] == pytest.approx(1.0)
    np.testing.assert_allclose(df["normalised"].iloc[1:], 0.0, atol=1e-12)  # all of it went with the head
    assert df["floor"].iloc[0] < 0.99
    assert df["changed"].tolist() == [False] + [True] * 6
    assert df.attrs["passed"] is True and df.attrs["first_changed_stage"] == "head"


def test_a_map_of_the_first_conv_fails_and_changes_only_at_block1(ff, images):
    df = randomisation_test(ff, images, 1, _first_conv_only)
    np.testing.assert_allclose(df["normalised"].iloc[:6], 1.0)
    assert df["changed"].tolist() == [False] * 6 + [True]
    assert df.attrs["passed"] is False and df.attrs["first_changed_stage"] == "block1"
    # the fully randomised stage always looks changed: that is why it cannot be the stage judged
    assert df["normalised"].iloc[-1] == pytest.approx(0.0)


def test_signed_and_absolute_similarities_are_both_stored(ff, images):
    df = randomisation_test(ff, images, 1, _head_only)
    # a sign flip of the head weights flips the signed map's ranking but not the absolute one's
    neg = randomisation_test(ff, images, 1, lambda m, x, t: -_head_only(m, x, t))
    np.testing.assert_allclose(neg["spearman_abs"], df["spearman_abs"])
    np.testing.assert_allclose(neg["ssim_abs"], df["ssim_abs"])
    assert df.loc[0, ["spearman", "ssim", "ssim_abs"]].tolist() == pytest.approx([1.0, 1.0, 1.0])


# --- the rule on given similarities ----------------------------------------------------------------------


def _table(means, B=8, noise=0.02, seed=0, **kw):
    """A stage table whose abs-Spearman means are ``means`` (the other similarities copy it)."""
    rng = np.random.default_rng(seed)
    sim = np.asarray(means, float)[:, None] + rng.normal(0, noise, (len(means), B))
    sim[0] = 1.0
    return stage_table({s: sim for s in SIMILARITIES}, STAGES[: len(means)], **kw)


def test_issue_15_shapes_guided_backprop_fails_grad_cam_passes():
    gbp = _table([1, 0.99, 0.99, 0.91, 0.81, 0.66, 0.28])  # the quick run's pet_ct means
    assert not gbp.attrs["passed"] and gbp.attrs["first_changed_stage"] in ("block2", "block1")
    assert gbp.loc[1, "normalised"] == pytest.approx((0.99 - 0.28) / 0.72, abs=0.03)
    cam = _table([1, -0.01, 0.02, 0.0, 0.01, 0.03, 0.05])
    assert cam.attrs["passed"] and cam.attrs["first_changed_stage"] == "head"
    # a random model's map with Spearman 0.08 to the trained one is changed (the old bar, -0.39, said not)
    near_zero = _table([1, 0.08, 0.06, 0.07, 0.05, 0.06, 0.06])
    assert near_zero.attrs["passed"]


def test_the_upper_end_of_the_ci_decides_not_the_mean():
    sim = np.zeros((3, 4))
    sim[0] = 1.0
    sim[1] = [0.9, -0.3, 0.9, -0.3]  # mean 0.3 < 0.5, but four images cannot show it
    df = stage_table({s: sim for s in SIMILARITIES}, STAGES[:3])
    assert df.loc[1, "normalised"] == pytest.approx(0.3)
    assert df.loc[1, "normalised_ci_high"] > BAR and not df.loc[1, "changed"]
    assert df.attrs["first_changed_stage"] == "block5" and not df.attrs["passed"]


def test_flat_floor_means_no_stage_changes_the_map():
    sim = np.ones((4, 5))
    sim[-1] -= 1e-8
    out = normalised_similarity(sim)
    np.testing.assert_array_equal(out["normalised"], 1.0)
    df = stage_table({s: sim for s in SIMILARITIES}, STAGES[:4])
    assert not df["changed"].any() and df.attrs["first_changed_stage"] == NEVER


def test_bootstrap_is_seeded_reproducible_and_leaves_the_global_rng_alone():
    rng = np.random.default_rng(3)
    sim = np.vstack([np.ones(12), rng.uniform(-0.2, 0.8, (3, 12))])
    state = np.random.get_state()[1].copy()
    a = normalised_similarity(sim, seed=7)
    b = normalised_similarity(sim, seed=7)
    c = normalised_similarity(sim, seed=8)
    assert np.array_equal(np.random.get_state()[1], state)
    for key in ("normalised", "ci_low", "ci_high"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["ci_low"][1:3], c["ci_low"][1:3])
    np.testing.assert_array_equal(a["normalised"], c["normalised"])  # the point estimate has no randomness
    assert (a["ci_low"][1:3] <= a["normalised"][1:3]).all() and (a["normalised"][1:3] <= a["ci_high"][1:3]).all()
    assert a["ci_high"][-1] == a["ci_low"][-1] == 0.0  # the floor against itself, in every resample


def test_nan_images_are_left_out_with_their_floor():
    sim = np.array([[1.0, 1.0, 1.0], [0.2, np.nan, 0.4], [0.0, 0.5, 0.2]])
    out = normalised_similarity(sim)
    assert out["n"].tolist() == [3, 2, 3]
    assert out["normalised"][1] == pytest.approx((0.3 - 0.1) / 0.9)
    assert out["floor"] == pytest.approx(0.7 / 3)
    none = normalised_similarity(np.array([[1.0, 1.0], [0.5, 0.5], [np.nan, np.nan]]))
    assert np.isnan(none["normalised"]).all()


def test_verdict_reads_the_first_randomised_stage():
    df = _table([1, 0.9, 0.1, 0.0])
    assert sanity_verdict(df) == (False, "block5")
    assert sanity_verdict(df.iloc[::-1]) == sanity_verdict(df)  # row order does not matter
    with pytest.raises(ValueError, match="changed"):
        sanity_verdict(df.drop(columns="changed"))


# --- the model-level plumbing ----------------------------------------------------------------------------


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
    cols = [*SIMILARITIES, "normalised", "normalised_ci_low", "normalised_ci_high"]
    np.testing.assert_array_equal(a[cols], b[cols])


def test_string_method_goes_through_explain(ff):
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    df = randomisation_test(ff, images, [0, 1], "grad_cam", n_resamples=50)
    assert len(df) == 7 and df.attrs["method"] == "grad_cam"
    edge = randomisation_test(ff, images, [0, 1], "edge", n_resamples=50)  # model-independent baseline method
    assert not edge["changed"].any() and edge.attrs["first_changed_stage"] == NEVER


def test_map_similarity_values():
    a = np.random.default_rng(0).random((3, 8, 8))
    sp, ss = map_similarity(a, a)
    np.testing.assert_allclose(sp, 1.0)
    np.testing.assert_allclose(ss, 1.0)
    sp, _ = map_similarity(a, -a)
    np.testing.assert_allclose(sp, -1.0)
    sp, _ = map_similarity(a, np.zeros_like(a))  # a map that went flat kept none of the ranking
    np.testing.assert_array_equal(sp, 0.0)
    sp, _ = map_similarity(np.zeros_like(a), a)  # no ranking to keep: undefined
    assert np.isnan(sp).all()
    b = a.copy()
    b[1, 0, 0] = np.nan
    sp, ss = map_similarity(a, b)
    assert np.isnan(sp[1]) and np.isnan(ss[1]) and np.isfinite(sp[[0, 2]]).all()


def test_needs_two_images(ff):
    with pytest.raises(ValueError, match="B >= 2"):
        randomisation_test(ff, torch.rand(1, 3, 32, 32), 0, _ignores_weights)
