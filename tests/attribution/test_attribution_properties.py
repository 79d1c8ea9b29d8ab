"""Properties every registered method must have (a new method is tested the moment it is registered)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from bench.attribution import FAMILIES, METHODS, available_methods, explain, method_cost, postprocess

ALL = available_methods()
HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def hooks(model: nn.Module) -> int:
    return sum(len(getattr(m, d)) for m in model.modules() for d in HOOK_TABLES)


def snapshot(model: nn.Module) -> dict:
    return {
        "modes": [m.training for m in model.modules()],
        "flags": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "state": {k: v.clone() for k, v in model.state_dict().items()},
        "hooks": hooks(model),
    }


def assert_same(before: dict, after: dict) -> None:
    assert before["modes"] == after["modes"]
    assert before["flags"] == after["flags"]
    assert before["hooks"] == after["hooks"] == 0
    for a, b in zip(before["grads"], after["grads"]):
        assert (a is None and b is None) or torch.equal(a, b)
    for k, v in before["state"].items():
        assert torch.equal(v, after["state"][k]), k


@pytest.fixture
def messy_model(make_ff):
    """Train mode, part of it frozen, one BatchNorm in eval mode: all must survive a call."""
    m = make_ff(seed=7).train()
    for p in m.features[:5].parameters():
        p.requires_grad_(False)
    m.bn3.eval()
    return m


def test_registry_lists_every_method_of_the_issue():
    want = {
        "grad_cam", "grad_cam_pp", "xgrad_cam", "layer_cam", "score_cam", "eigen_cam", "fused_grad_cam",
        "saliency", "input_x_gradient", "integrated_gradients", "smoothgrad", "guided_backprop",
        "guided_grad_cam", "deeplift", "occlusion", "rise", "random", "centre", "edge",
    }  # fmt: skip
    assert set(ALL) == want


@pytest.mark.parametrize("method", ALL)
def test_meta_is_complete(method):
    meta = METHODS.meta(method)
    assert meta["family"] in FAMILIES
    assert isinstance(meta["uses_layer"], bool)
    assert set(meta["cost"]) == {"forward", "backward"}
    assert all(isinstance(v, int) and v >= 0 for v in meta["cost"].values())
    assert method_cost(method) == dict(meta["cost"])
    assert method in postprocess.RULES
    if meta["stochastic"]:
        assert "seed" in meta["options"]
    json.dumps(dict(meta))  # plain data: the sweep saves it beside results


@pytest.mark.parametrize("method", ALL)
def test_shape_dtype_finite_and_model_left_as_found(messy_model, images, fast_options, method):
    before = snapshot(messy_model)
    rng = torch.get_rng_state()
    x = images.clone()
    out = explain(messy_model, x, [0, 1, 1], method, **fast_options.get(method, {}))
    assert torch.equal(x, images) and not x.requires_grad and x.grad is None  # input untouched
    assert out.shape == (3, 32, 32)
    assert out.dtype == torch.float32 and out.device == images.device
    assert torch.isfinite(out).all()
    assert out.is_contiguous()
    assert_same(before, snapshot(messy_model))
    assert torch.equal(rng, torch.get_rng_state()), "the global RNG was used"


@pytest.mark.parametrize("method", ALL)
def test_deterministic(model, images, fast_options, method):
    opts = fast_options.get(method, {})
    a = explain(model, images, 1, method, **opts)
    torch.manual_seed(123)  # the global RNG state must not matter
    b = explain(model, images, 1, method, **opts)
    torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("method", [m for m in ALL if METHODS.meta(m)["stochastic"]])
def test_seed_changes_stochastic_methods(model, images, fast_options, method):
    opts = fast_options.get(method, {})
    a = explain(model, images, 1, method, seed=0, **opts)
    b = explain(model, images, 1, method, seed=1, **opts)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("method", [m for m in ALL if m != "random"])
def test_batch_equals_images_one_by_one(model, images, fast_options, method):
    opts = fast_options.get(method, {})
    batch = explain(model, images, [1, 0, 1], method, **opts)
    single = torch.cat([explain(model, images[i : i + 1], [1, 0, 1][i], method, **opts) for i in range(3)])
    # float32 kernels may sum in another order at another batch size: allow 1e-5 of the map's scale,
    # and 1e-6 absolute for occlusion's small differences of probabilities
    atol = max(1e-5 * float(batch.abs().max()), 1e-6)
    torch.testing.assert_close(batch, single, atol=atol, rtol=1e-4)


@pytest.mark.parametrize("method", ALL)
def test_default_options_run(model, method):
    x = torch.rand((1, 3, 32, 32), generator=torch.Generator().manual_seed(9))
    out = explain(model, x, 0, method)
    assert out.shape == (1, 32, 32) and torch.isfinite(out).all()


class Exploding(nn.Module):
    """Wraps a model; its forward raises after running the inner model."""

    num_classes = 2

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.default_cam_layer = inner.default_cam_layer

    @property
    def cam_layers(self) -> dict[str, nn.Module]:
        return self.inner.cam_layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inner(x)
        raise RuntimeError("boom")


@pytest.mark.parametrize("method", [m for m in ALL if METHODS.meta(m)["cost"]["forward"] > 0])
def test_model_left_as_found_when_the_method_raises(messy_model, images, fast_options, method):
    bomb = Exploding(messy_model).train()
    before = snapshot(bomb)
    with pytest.raises(RuntimeError, match="boom"):
        explain(bomb, images, 0, method, **fast_options.get(method, {}))
    assert_same(before, snapshot(bomb))


def test_unknown_method_and_option_raise_with_the_valid_names(model, images):
    with pytest.raises(ValueError, match="grad_cam"):
        explain(model, images, 0, "gradcam")
    with pytest.raises(ValueError, match="n_masks"):
        explain(model, images, 0, "rise", n_mask=10)
    with pytest.raises(ValueError, match="none"):
        explain(model, images, 0, "grad_cam", seed=1)


def test_layer_methods_need_cam_layers(images):
    plain = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="cam_layers"):
        explain(plain, images, 0, "grad_cam")
    assert explain(plain, images, 0, "saliency").shape == (3, 32, 32)


def test_available_methods_by_family():
    assert "grad_cam" in available_methods("cam") and "saliency" not in available_methods("cam")
    assert set(available_methods("baseline")) == {"random", "centre", "edge"}
    with pytest.raises(ValueError):
        available_methods("magic")
