import pytest
import torch

from bench.models import count_parameters, create_model
from bench.models.ff_vgg19 import VGG19_LAYERS

VGG_FAMILY = ["ff_vgg19", "vgg19"]  # the models with width/head_units (the others: tests/models/test_model_zoo.py)


def test_ff_vgg19_has_the_papers_parameter_count():
    assert count_parameters(create_model("ff_vgg19", 2)) == 20_878_614


def test_ff_vgg19_layer_names_and_modules():
    m = create_model("ff_vgg19", 2, width=0.125, head_units=16)
    assert m.default_cam_layer == "block5_conv3"
    assert m.taps == ("block5_conv3", "block4_pool", "block3_pool")
    for name in ("block3_pool", "block4_pool", "block5_conv3"):
        assert m.cam_layers[name] is m.features[VGG19_LAYERS[name]]
    assert isinstance(m.cam_layers["block5_conv3"], torch.nn.ReLU)
    assert isinstance(m.cam_layers["block4_pool"], torch.nn.MaxPool2d)
    assert "block5_conv4" not in m.cam_layers  # not in the authors' graph
    bn = m.bn3
    assert bn.momentum == pytest.approx(0.01) and bn.eps == pytest.approx(1e-3)


@pytest.mark.parametrize("name", VGG_FAMILY)
@pytest.mark.parametrize("size,width", [(32, 0.125), (48, 0.125), (65, 0.25)])
def test_forward_shapes(name, size, width):
    m = create_model(name, 3, width=width, head_units=32).eval()
    with torch.no_grad():
        assert m(torch.rand(2, 3, size, size)).shape == (2, 3)
    assert m.default_cam_layer in m.cam_layers


@pytest.mark.parametrize("name", VGG_FAMILY)
def test_too_small_input_is_a_clear_error(name):
    m = create_model(name, 2, width=0.125, head_units=8)
    with pytest.raises(ValueError, match="H, W >= 32"):
        m(torch.rand(1, 3, 16, 16))


def test_freeze_backbone_and_single_tap():
    m = create_model("ff_vgg19", 2, width=0.125, head_units=8, freeze_backbone=True)
    assert not any(p.requires_grad for p in m.features.parameters())
    assert all(p.requires_grad for p in m.head.parameters())
    single = create_model("ff_vgg19", 2, width=0.125, head_units=8, taps=("block5_conv3",))
    assert single.head[0].in_features == 64 and not hasattr(single, "bn3")


def test_pretrained_from_local_file(tmp_path):
    src = create_model("ff_vgg19", 2, width=1.0, head_units=8)
    torch.save({k: v for k, v in src.state_dict().items() if k.startswith("features.")}, tmp_path / "w.pt")
    dst = create_model("ff_vgg19", 5, width=1.0, head_units=8, pretrained=str(tmp_path / "w.pt"))
    assert torch.equal(dst.features[0].weight, src.features[0].weight)
    with pytest.raises(FileNotFoundError, match="never downloaded"):
        create_model("ff_vgg19", 2, pretrained=str(tmp_path / "missing.pt"))


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match="densenet121, ff_vgg19, resnet50, vgg19, vit_b_16"):
        create_model("resnet", 2)


@pytest.mark.parametrize("name", VGG_FAMILY)
def test_batch_norm_backbone_keeps_layer_names_and_outputs(name):
    plain = create_model(name, 2, width=0.125, head_units=8)
    bn = create_model(name, 2, width=0.125, head_units=8, batch_norm=True)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in bn.features) == sum(
        isinstance(m, torch.nn.Conv2d) for m in plain.features)
    for layer in plain.cam_layers:
        assert type(bn.cam_layers[layer]) is type(plain.cam_layers[layer])
    # the block5_conv3 tap reads the ReLU right after the 15th conv's BatchNorm
    if name == "ff_vgg19":
        i = list(bn.features).index(bn.cam_layers["block5_conv3"])
        assert isinstance(bn.features[i - 1], torch.nn.BatchNorm2d) and isinstance(bn.features[i - 2], torch.nn.Conv2d)
        assert bn.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 2)
