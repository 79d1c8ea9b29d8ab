"""FF-VGG19 (feature-fusion VGG19) as the seed paper's authors build it, and plain VGG19.

Reference: ../shared/REFERENCE.md section 2. The backbone mirrors torchvision's ``vgg19().features``
index for index (so a torchvision state dict loads into it), but stops after block5_conv3 + ReLU.
ReLUs are *not* in-place, so forward hooks on any layer see the tensor the next layer reads.

Shapes: input ``(B, 3, H, W)`` with H, W >= 32 and values in [0, 1]; output logits ``(B, num_classes)``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

# torchvision's VGG19 configuration "E": channels per conv, "M" = 2x2 max-pool.
VGG19_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M")

# Index into ``features`` of the module whose *output* is the named feature map.
VGG19_LAYERS = {
    "block1_pool": 4,
    "block2_pool": 9,
    "block3_pool": 18,
    "block4_pool": 27,
    "block5_conv3": 33,  # the ReLU after block5_conv3, as Keras's block5_conv3 (activation inside)
    "block5_conv4": 35,
    "block5_pool": 36,
}

# Keras BatchNormalization defaults (momentum 0.99 of the running mean, eps 1e-3) in PyTorch terms.
# With few optimiser steps (the CPU presets) running statistics that move 1% per step are still far
# from the data when training ends, so the presets raise ``bn_momentum`` to PyTorch's 0.1.
KERAS_BN_MOMENTUM, KERAS_BN_EPS = 0.01, 1e-3

FF_TAPS = ("block5_conv3", "block4_pool", "block3_pool")  # concatenation order of the fusion


def scaled(channels: int, width: float) -> int:
    """Channel count at width multiplier ``width`` (at least 1)."""
    return max(1, int(round(channels * width)))


def vgg_features(width: float = 1.0, end: int = len(VGG19_CFG), *, batch_norm: bool = False) -> nn.Sequential:
    """torchvision-compatible VGG19 ``features`` up to config entry ``end`` (exclusive).

    ``batch_norm=True`` gives torchvision's ``vgg19_bn`` layout (conv, BatchNorm, ReLU).
    """
    layers: list[nn.Module] = []
    c_in = 3
    for v in VGG19_CFG[:end]:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            c_out = scaled(v, width)
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=False))
            c_in = c_out
    return nn.Sequential(*layers)


def layer_index(name: str, *, batch_norm: bool = False) -> int:
    """Index into ``features`` of the module whose output is feature map ``name``."""
    if not batch_norm:
        return VGG19_LAYERS[name]
    i = VGG19_LAYERS[name]  # count the BatchNorms inserted before (and, for a ReLU, within) this point
    n_conv_before = sum(1 for k in range(i + 1) if _plain_kind(k) == "conv")
    return i + n_conv_before


def _plain_kind(k: int) -> str:
    """Module kind at index ``k`` of the plain VGG19 ``features``."""
    j = 0
    for v in VGG19_CFG:
        kinds = ["pool"] if v == "M" else ["conv", "relu"]
        for kind in kinds:
            if j == k:
                return kind
            j += 1
    raise IndexError(k)


def _load_pretrained(model: nn.Module, path: str) -> None:
    """Load a *local* weights file (a state dict; torchvision VGG19 keys are accepted)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"pretrained weights {p} not found; pass the path of a local state-dict file "
            "(weights are never downloaded), or pretrained='' to train from scratch"
        )
    state = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not any(k.startswith("features.") for k in usable):
        raise ValueError(
            f"{p}: no backbone weights match this model (width must be 1.0 for torchvision VGG19 weights)"
        )
    model.load_state_dict(usable, strict=False)


class _Backbone(nn.Module):
    """Shared behaviour: cam_layers, weight init, freezing, pretrained loading."""

    features: nn.Sequential
    default_cam_layer: str

    def _init_weights(self) -> None:
        """He (Kaiming) init as torchvision's VGG: a 15-conv stack without BatchNorm does not train
        from scratch with PyTorch's default init (activations shrink layer by layer)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    batch_norm: bool = False

    @property
    def cam_layers(self) -> dict[str, nn.Module]:
        """Layer name -> the module whose output is that feature map (for attribution)."""
        n = len(self.features)
        idx = {name: layer_index(name, batch_norm=self.batch_norm) for name in VGG19_LAYERS}
        return {name: self.features[i] for name, i in idx.items() if i < n}

    def _finish(self, pretrained: str, freeze_backbone: bool) -> None:
        self._init_weights()
        if pretrained:
            _load_pretrained(self, pretrained)
        if freeze_backbone:
            for p in self.features.parameters():
                p.requires_grad_(False)


class FFVGG19(_Backbone):
    """FF-VGG19: VGG19 to block5_conv3, three GAP taps fused, dense head.

    Taps (concatenated in this order): block5_conv3 -> GAP; block4_pool -> BN -> Dropout(0.5) -> GAP;
    block3_pool -> BN -> Dropout(0.5) -> GAP. Head: Linear(head_units) -> ReLU -> BatchNorm1d ->
    Dropout(0.5) -> Linear(num_classes). With ``num_classes=2`` and defaults: 20,878,614 parameters.

    ``batch_norm=True`` puts a BatchNorm after every backbone conv (torchvision's vgg19_bn layout):
    not the paper's network, but it trains from scratch in a fraction of the epochs, which the CPU
    presets need. ``bn_momentum`` is PyTorch's (1 - Keras's momentum); the default 0.01 is Keras's 0.99.
    ``taps`` selects a subset of the three taps (tests use a single tap to compare fused and plain
    Grad-CAM); the paper's network uses all three.
    """

    default_cam_layer = "block5_conv3"

    def __init__(
        self,
        num_classes: int,
        *,
        width: float = 1.0,
        head_units: int = 2500,
        dropout: float = 0.5,
        taps: tuple[str, ...] = FF_TAPS,
        bn_momentum: float = KERAS_BN_MOMENTUM,
        batch_norm: bool = False,
        pretrained: str = "",
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        bad = [t for t in taps if t not in FF_TAPS]
        if bad or not taps:
            raise ValueError(f"taps must be a non-empty subset of {FF_TAPS}, got {taps}")
        self.taps = tuple(t for t in FF_TAPS if t in taps)
        self.batch_norm = batch_norm
        self.features = vgg_features(width, end=19, batch_norm=batch_norm)  # cfg entries up to block5_conv3
        self._cuts = [layer_index(n, batch_norm=batch_norm) + 1 for n in ("block3_pool", "block4_pool", "block5_conv3")]
        c3, c4, c5 = scaled(256, width), scaled(512, width), scaled(512, width)
        bn_kw = {"momentum": bn_momentum, "eps": KERAS_BN_EPS}
        self.bn3, self.drop3 = nn.BatchNorm2d(c3, **bn_kw), nn.Dropout(dropout)
        self.bn4, self.drop4 = nn.BatchNorm2d(c4, **bn_kw), nn.Dropout(dropout)
        fused = sum({"block5_conv3": c5, "block4_pool": c4, "block3_pool": c3}[t] for t in self.taps)
        if "block3_pool" not in self.taps:
            del self.bn3, self.drop3
        if "block4_pool" not in self.taps:
            del self.bn4, self.drop4
        self.head = nn.Sequential(
            nn.Linear(fused, head_units),
            nn.ReLU(inplace=False),
            nn.BatchNorm1d(head_units, **bn_kw),
            nn.Dropout(dropout),
            nn.Linear(head_units, num_classes),
        )
        self.num_classes = num_classes
        self._finish(pretrained, freeze_backbone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 32:
            raise ValueError(f"expected input (B, 3, H, W) with H, W >= 32, got {tuple(x.shape)}")
        f = self.features
        c3, c4, c5 = self._cuts
        b3 = f[:c3](x)
        b4 = f[c3:c4](b3)
        b5 = f[c4:c5](b4)
        pooled = []
        for tap in self.taps:
            if tap == "block5_conv3":
                pooled.append(b5.mean(dim=(2, 3)))
            elif tap == "block4_pool":
                pooled.append(self.drop4(self.bn4(b4)).mean(dim=(2, 3)))
            else:
                pooled.append(self.drop3(self.bn3(b3)).mean(dim=(2, 3)))
        return self.head(torch.cat(pooled, dim=1))


class VGG19(_Backbone):
    """Plain VGG19 (torchvision layout) with a new classifier of ``head_units`` hidden units.

    Grad-CAM's usual layer for VGG is the last conv (block5_conv4 + ReLU).
    """

    default_cam_layer = "block5_conv4"

    def __init__(
        self,
        num_classes: int,
        *,
        width: float = 1.0,
        head_units: int = 4096,
        dropout: float = 0.5,
        batch_norm: bool = False,
        pretrained: str = "",
        freeze_backbone: bool = False,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.batch_norm = batch_norm
        self.features = vgg_features(width, batch_norm=batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
        c5 = scaled(512, width)
        self.classifier = nn.Sequential(
            nn.Linear(c5 * 49, head_units),
            nn.ReLU(inplace=False),
            nn.Dropout(dropout),
            nn.Linear(head_units, head_units),
            nn.ReLU(inplace=False),
            nn.Dropout(dropout),
            nn.Linear(head_units, num_classes),
        )
        self.num_classes = num_classes
        self._finish(pretrained, freeze_backbone)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 32:
            raise ValueError(f"expected input (B, 3, H, W) with H, W >= 32, got {tuple(x.shape)}")
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))
