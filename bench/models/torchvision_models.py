"""ResNet-50, DenseNet-121 and ViT-B/16: torchvision's architectures, made explainable by every method.

Each model holds torchvision's own modules under torchvision's own names, so a torchvision state dict (or
a CheXNet-style one, see :func:`load_weights`) loads into it key for key; nothing is ever downloaded.
torchvision is imported when a model is built, not when :mod:`bench.models` is imported (it costs ~2 s).

What differs from torchvision, none of it changing the model's function (tests/models/test_model_zoo.py
checks the logits against torchvision's own model with the same weights):

- **Inputs** are ``(B, 3, H, W)`` in [0, 1], as every bench dataset gives them. With ``normalize=True``
  (the default) the first module, :class:`InputNormalization`, subtracts ImageNet's mean and divides by
  its standard deviation (the preprocessing of torchvision's and CheXNet's weights), so attributions are
  taken with respect to the [0, 1] image and the all-zero baseline of integrated gradients and DeepLIFT
  is the black image. ``normalize=False`` feeds the [0, 1] image as it is (weights trained that way).
  FF-VGG19 and VGG19 take the [0, 1] image without any normalisation.
- **ReLUs** are distinct, non-inplace ``nn.ReLU`` modules, each called once per forward pass: captum's
  DeepLift and guided backprop override the backward pass of ``nn.ReLU`` *modules* and keep one input
  per module, so torchvision's Bottleneck (``self.relu`` called three times, in place) makes DeepLift
  raise, and DenseNet's final ``F.relu`` (a function, invisible to captum) would pass plain gradients.
  Here ResNet's blocks get ``relu1``/``relu2``/``relu3``, and DenseNet's final ReLU is the module
  ``features.relu5``; ReLUs carry no weights, so state dicts are unchanged.
- **CAM layers**, ``cam_layers`` (name -> module whose output is the map) and ``default_cam_layer``, as
  these models' users choose them (pytorch-grad-cam's README): ResNet ``layer4``; DenseNet ``relu5``
  (the last dense block after ``norm5`` and its ReLU, i.e. what the classifier pools); ViT
  ``block11_norm1``, the input of the last encoder block's attention after its LayerNorm (timm's
  ``blocks[-1].norm1``). Not the last block's output: the classifier reads only the class token after
  it, so the gradient with respect to its 196 patch tokens is exactly zero.
- **Token layers** (ViT) come with ``cam_reshape`` (layer name -> :class:`TokenGrid`): the class token
  is dropped and the patch tokens are laid out as a ``(B, D, h, w)`` map (224 px: 14 x 14). The layer
  hooks of :mod:`bench.attribution.base` apply it, so every CAM method sees a feature map.
- **Randomisation stages** (``randomisation_stages()``, read by :func:`bench.metrics.randomisation_stages`)
  follow each architecture's blocks from the output down.
- **Methods that do not apply** are listed in ``unsupported_methods`` (method -> why); ``explain`` refuses
  them with that reason. ViT: guided backprop and guided Grad-CAM (no ReLU: they would be the plain
  gradient) and DeepLift (captum has no rule for GELU, LayerNorm or attention: it would be input x gradient).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "InputNormalization",
    "TokenGrid",
    "LoadReport",
    "load_weights",
    "ResNet50",
    "DenseNet121",
    "ViTB16",
]


class InputNormalization(nn.Module):
    """``(x - mean) / std`` per colour channel, a fixed first layer: ``(B, 3, H, W)`` -> same shape.

    ``mean`` and ``std`` are non-persistent buffers: they follow ``.to(device)`` but are not in the state
    dict (a torchvision state dict has no such keys) and have no parameters to train or randomise.
    """

    def __init__(self, mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return f"mean={tuple(self.mean.flatten().tolist())}, std={tuple(self.std.flatten().tolist())}"


@dataclass(frozen=True)
class TokenGrid:
    """How a token layer's output ``(B, prefix + h*w, D)`` is read as a feature map ``(B, D, h, w)``.

    The ``prefix`` leading tokens (ViT's class token) are dropped; the patch tokens, in row-major order
    (torchvision's and timm's ``conv_proj`` + ``flatten``), become the ``h x w`` grid, channels first —
    pytorch-grad-cam's ``reshape_transform`` for ViT. :meth:`to_tokens` is the exact inverse (it takes the
    prefix tokens back from the original output), so a hook can hand the next layer a sequence built from
    the map it keeps.
    """

    height: int
    width: int
    prefix: int = 1

    def to_grid(self, tokens: torch.Tensor) -> torch.Tensor:
        """``(B, prefix + h*w, D)`` -> ``(B, D, h, w)`` (a view; the prefix tokens are dropped)."""
        n = self.prefix + self.height * self.width
        if tokens.ndim != 3 or tokens.shape[1] != n:
            raise ValueError(
                f"expected a token sequence (B, {n}, D) = {self.prefix} prefix token(s) + a "
                f"{self.height} x {self.width} grid, got {tuple(tokens.shape)}"
            )
        b, _, d = tokens.shape
        return tokens[:, self.prefix:, :].reshape(b, self.height, self.width, d).permute(0, 3, 1, 2)

    def to_tokens(self, grid: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``grid`` ``(B, D, h, w)`` back to a sequence ``(B, prefix + h*w, D)``, the prefix tokens taken
        from ``tokens`` (the layer's original output). A new tensor; values equal to ``tokens`` when
        ``grid == to_grid(tokens)``."""
        b, d = grid.shape[:2]
        patches = grid.permute(0, 2, 3, 1).reshape(b, self.height * self.width, d)
        return torch.cat([tokens[:, : self.prefix, :].to(patches.dtype), patches], dim=1)


# ----------------------------------------------------------------------------------------------
# loading a local state dict


@dataclass(frozen=True)
class LoadReport:
    """What :func:`load_weights` did: ``loaded`` tensors copied, the file's ``skipped`` keys (a classifier
    for another number of classes, or under other names), the model's keys ``kept`` at their random
    initialisation (the new classifier), the ``prefix`` stripped from the file's keys and the keys
    ``adapted`` (ViT position embeddings interpolated to another image size)."""

    path: str
    loaded: int
    skipped: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    prefix: str = ""
    adapted: tuple[str, ...] = ()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a local state-dict file (also inside a ``state_dict`` / ``model_state_dict`` /
    ``model`` entry, as CheXNet, Lightning and bench checkpoints store them)."""
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights {path} not found; pass the path of a local state-dict file "
            "(weights are never downloaded), or pretrained='' to start from random weights"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for pickled code, RuntimeError for a corrupt file
        why = (str(exc).strip().splitlines() or ["an empty or truncated file"])[0]
        raise ValueError(
            f"{path}: refused to load: {type(exc).__name__}: {why} (expected a state dict of tensors saved "
            "with torch.save(model.state_dict(), path); a pickled whole model is never unpickled)"
        ) from None
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(blob, dict) and isinstance(blob.get(key), dict):
            blob = blob[key]
            break
    state = {k: v for k, v in blob.items() if isinstance(k, str) and isinstance(v, torch.Tensor)} \
        if isinstance(blob, dict) else {}
    if not state:
        raise ValueError(f"{path}: holds no tensors; expected a state dict (parameter name -> tensor)")
    return state


def _best_prefix(keys: list[str], own: set[str]) -> str:
    """The leading ``a.`` / ``a.b.`` / ``a.b.c.`` of the file's keys whose removal makes the most keys
    names of the model (``""`` when none does better than the keys as they are); e.g. CheXNet's
    ``module.densenet121.``, DataParallel's ``module.``, Lightning's ``model.``."""
    candidates = {""}
    for k in keys:
        parts = k.split(".")
        candidates.update(".".join(parts[:i]) + "." for i in range(1, min(4, len(parts))))

    def hits(prefix: str) -> int:
        return sum((k[len(prefix):] if k.startswith(prefix) else k) in own for k in keys)

    return max(sorted(candidates, key=len), key=hits)  # the shortest among the best


def load_weights(
    model: nn.Module,
    path: str | Path,
    *,
    head: str,
    rename: Callable[[str], str] | None = None,
    adapt: Callable[[str, torch.Tensor, torch.Tensor], torch.Tensor | None] | None = None,
) -> LoadReport:
    """Load the local state-dict file ``path`` into ``model``, all of it but the classifier if need be.

    Keys are matched after ``rename`` (e.g. DenseNet's old ``norm.1`` -> ``norm1``) and after removing the
    prefix that best matches (:func:`_best_prefix`). Keys under ``head`` (the classifier's module name
    plus ``.``) that do not fit — another class count, or another layout such as CheXNet's
    ``classifier.0`` (Linear + Sigmoid) — are skipped and the model's classifier keeps its initialisation;
    the skipped and kept keys are named in a ``UserWarning`` and in the returned :class:`LoadReport`
    (also stored as ``model.pretrained_report``). ``adapt(key, file_tensor, own_tensor)`` may return a
    tensor of the model's shape for a key whose shape differs (ViT's position embeddings).

    Raises:
        FileNotFoundError: no such file (weights are never downloaded).
        ValueError: the file is not a state dict, or a backbone key (outside ``head``) is missing,
            unexpected or of another shape; the message names the file and the first such keys.
    """
    path = Path(path)
    state = _read_state_dict(path)
    if rename is not None:
        state = {rename(k): v for k, v in state.items()}
    own = model.state_dict()
    prefix = _best_prefix(list(state), set(own))
    state = {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state.items()}

    def in_head(k: str) -> bool:
        return k.startswith(head)

    adapted = []
    for k, v in list(state.items()):
        if k in own and v.shape != own[k].shape and adapt is not None:
            new = adapt(k, v, own[k])
            if new is not None:
                state[k] = new
                adapted.append(k)
    fits = {k: v for k, v in state.items() if k in own and v.shape == own[k].shape}
    optional = ("num_batches_tracked",)  # BatchNorm counters, absent from old files; not used in eval
    missing = [k for k in own if k not in fits and not in_head(k) and not k.endswith(optional)]
    unexpected = [k for k in state if k not in own and not in_head(k)]
    shapes = [f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in state if k in own and k not in fits and not in_head(k)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing, first {missing[:5]}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected, first {unexpected[:5]}")
        if shapes:
            parts.append(f"{len(shapes)} of another shape, first " + "; ".join(shapes[:3]))
        strip = f" (after removing the prefix {prefix!r})" if prefix else ""
        raise ValueError(
            f"{path}: these weights do not fit {type(model).__name__}{strip}: " + ", ".join(parts)
            + f". The file's first keys: {list(state)[:3]}; the model's: {list(own)[:3]}. "
            "Pass a state dict of the same architecture (torchvision's names; a 'module.' or model-name "
            "prefix is removed)"
        )
    model.load_state_dict(fits, strict=False)
    skipped = tuple(k for k in state if k not in fits)
    kept = tuple(k for k in own if k not in fits and not k.endswith(optional))
    report = LoadReport(str(path), len(fits), skipped, kept, prefix, tuple(adapted))
    if skipped or kept:
        warnings.warn(
            f"{path}: loaded {len(fits)} tensors into {type(model).__name__}; skipped the file's "
            f"{list(skipped) or 'nothing'}; kept the random initialisation of {list(kept) or 'nothing'} "
            "(the classifier for this number of classes)", UserWarning, stacklevel=3,
        )
    model.pretrained_report = report
    return report


# ----------------------------------------------------------------------------------------------
# shared behaviour


def _no_inplace_relus(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.ReLU):
            m.inplace = False


class _TorchvisionModel(nn.Module):
    """Input checking, normalisation, freezing and weights loading shared by the three models."""

    model_name: str
    default_cam_layer: str
    head: str  # the classifier's module name; its weights are not loaded when they do not fit
    min_size = 32  # ResNet/DenseNet: five stride-2 steps leave a 1 x 1 map at 32 px
    unsupported_methods: dict[str, str] = {}
    cam_reshape: dict[str, TokenGrid] = {}

    def _input_norm(self, normalize: bool) -> nn.Module:
        if not isinstance(normalize, bool):
            raise ValueError(f"{self.model_name}: normalize must be true or false, got {normalize!r}")
        return InputNormalization() if normalize else nn.Identity()

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < self.min_size:
            raise ValueError(
                f"{self.model_name}: expected input (B, 3, H, W) with H, W >= {self.min_size} and values in "
                f"[0, 1], got {tuple(x.shape)}"
            )

    def _rename(self, key: str) -> str:
        return key

    def _adapt(self, key: str, theirs: torch.Tensor, ours: torch.Tensor) -> torch.Tensor | None:
        return None

    def _finish(self, num_classes: int, pretrained: str, freeze_backbone: bool) -> None:
        self.num_classes = num_classes
        if pretrained:
            load_weights(self, pretrained, head=self.head + ".", rename=self._rename, adapt=self._adapt)
        if freeze_backbone:
            for name, p in self.named_parameters():
                if not name.startswith(self.head + "."):
                    p.requires_grad_(False)

    @staticmethod
    def _owned(model: nn.Module, *names: str) -> list[str]:
        """Qualified names of the modules under ``names`` that hold parameters or buffers of their own."""
        out = []
        for name in names:
            for sub, m in model.get_submodule(name).named_modules():
                if any(True for _ in m.parameters(recurse=False)) or any(True for _ in m.buffers(recurse=False)):
                    out.append(f"{name}.{sub}" if sub else name)
        return out


def _check_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")


# ----------------------------------------------------------------------------------------------
# ResNet-50


class _Bottleneck(nn.Module):
    """torchvision's Bottleneck with the same modules and names, but three distinct non-inplace ReLUs
    (``relu1``, ``relu2``, ``relu3``) instead of one ``relu`` called three times in place; ``out + identity``
    instead of ``out += identity``. Same function, same state-dict keys."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.conv1, self.bn1, self.relu1 = block.conv1, block.bn1, nn.ReLU()
        self.conv2, self.bn2, self.relu2 = block.conv2, block.bn2, nn.ReLU()
        self.conv3, self.bn3 = block.conv3, block.bn3
        self.downsample = block.downsample
        self.relu3 = nn.ReLU()
        self.stride = block.stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu3(out + identity)


class ResNet50(_TorchvisionModel):
    """ResNet-50 (He et al. 2016; torchvision's v1.5, stride in the 3x3 conv), 23.5 M parameters at 2 classes.

    Input ``(B, 3, H, W)`` in [0, 1], H, W >= 32 (224 in ImageNet training); ImageNet mean/std normalisation
    inside the model unless ``normalize=False``. Output logits ``(B, num_classes)``. CAM layers ``layer1`` ..
    ``layer4`` (the outputs of the four stages: 256, 512, 1024, 2048 channels at 1/4 .. 1/32 of the input;
    7 x 7 at 224 px), default ``layer4``. ``pretrained``: a local torchvision-layout state dict (the
    classifier ``fc`` is skipped when its class count differs). ``freeze_backbone``: train ``fc`` only.
    Randomisation stages: fc, layer4, layer3, layer2, layer1, stem (conv1 + bn1).
    """

    model_name = "resnet50"
    default_cam_layer = "layer4"
    head = "fc"

    def __init__(self, num_classes: int, *, pretrained: str = "", freeze_backbone: bool = False,
                 normalize: bool = True) -> None:
        super().__init__()
        from torchvision.models.resnet import Bottleneck, ResNet

        _check_classes(num_classes)
        net = ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes)
        self.input_norm = self._input_norm(normalize)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, nn.ReLU(), net.maxpool
        for i in range(1, 5):
            stage = getattr(net, f"layer{i}")
            setattr(self, f"layer{i}", nn.Sequential(*[_Bottleneck(b) for b in stage]))
        self.avgpool, self.fc = net.avgpool, net.fc
        self._finish(num_classes, pretrained, freeze_backbone)

    @property
    def cam_layers(self) -> dict[str, nn.Module]:
        """Layer name -> module whose output is that feature map (input to output)."""
        return {f"layer{i}": getattr(self, f"layer{i}") for i in range(1, 5)}

    def randomisation_stages(self) -> list[tuple[str, list[str]]]:
        """``[(stage, [module names])]`` from the output down: fc, layer4 .. layer1, stem."""
        stages = [("fc", ["fc"])]
        stages += [(f"layer{i}", self._owned(self, f"layer{i}")) for i in range(4, 0, -1)]
        return [*stages, ("stem", ["conv1", "bn1"])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.input_norm(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# ----------------------------------------------------------------------------------------------
# DenseNet-121

# torchvision's DenseNet loader: files from before PyTorch 0.4 name denselayer modules ``norm.1`` etc.
_OLD_DENSENET_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)


class DenseNet121(_TorchvisionModel):
    """DenseNet-121 (Huang et al. 2017), the backbone of CheXNet and CheXlocalize; 7.0 M parameters at 2 classes.

    Input ``(B, 3, H, W)`` in [0, 1], H, W >= 32; ImageNet mean/std normalisation inside the model unless
    ``normalize=False`` (CheXNet was trained on ImageNet-normalised X-rays). Output logits
    ``(B, num_classes)`` (CheXNet's sigmoid is not part of the model). ``features`` is torchvision's, plus
    ``relu5``: the final ReLU that torchvision applies as ``F.relu`` in ``forward``. CAM layers
    ``denseblock1`` .. ``denseblock4``, ``transition1`` .. ``transition3``, ``norm5`` (before that ReLU) and
    ``relu5`` (the default: 1024 channels, 7 x 7 at 224 px, what the classifier average-pools; the map
    pytorch-grad-cam's ``features[-1]`` sees on torchvision's model, whose ReLU runs in place on it).
    ``pretrained``: a local torchvision or CheXNet state dict (``module.densenet121.`` prefixes and old
    ``norm.1`` names are accepted; a classifier of another class count or layout is skipped and reported).
    Randomisation stages: classifier, denseblock4 (+ norm5), transition3, denseblock3, transition2,
    denseblock2, transition1, denseblock1, stem (conv0 + norm0).
    """

    model_name = "densenet121"
    default_cam_layer = "relu5"
    head = "classifier"

    def __init__(self, num_classes: int, *, pretrained: str = "", freeze_backbone: bool = False,
                 normalize: bool = True) -> None:
        super().__init__()
        from torchvision.models.densenet import DenseNet

        _check_classes(num_classes)
        net = DenseNet(32, (6, 12, 24, 16), 64, num_classes=num_classes)
        _no_inplace_relus(net)
        net.features.add_module("relu5", nn.ReLU())
        self.input_norm = self._input_norm(normalize)
        self.features, self.classifier = net.features, net.classifier
        self._finish(num_classes, pretrained, freeze_backbone)

    def _rename(self, key: str) -> str:
        m = _OLD_DENSENET_KEY.match(key)
        return m.group(1) + m.group(2) if m else key

    @property
    def cam_layers(self) -> dict[str, nn.Module]:
        """Layer name -> module whose output is that feature map (input to output)."""
        names = ["denseblock1", "transition1", "denseblock2", "transition2", "denseblock3", "transition3",
                 "denseblock4", "norm5", "relu5"]
        return {n: getattr(self.features, n) for n in names}

    def randomisation_stages(self) -> list[tuple[str, list[str]]]:
        """``[(stage, [module names])]`` from the output down (see the class docstring)."""
        stages = [("classifier", ["classifier"]),
                  ("denseblock4", [*self._owned(self, "features.denseblock4"), "features.norm5"])]
        for i in (3, 2, 1):
            stages.append((f"transition{i}", self._owned(self, f"features.transition{i}")))
            stages.append((f"denseblock{i}", self._owned(self, f"features.denseblock{i}")))
        return [*stages, ("stem", ["features.conv0", "features.norm0"])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        out = F.adaptive_avg_pool2d(self.features(self.input_norm(x)), (1, 1))
        return self.classifier(torch.flatten(out, 1))


# ----------------------------------------------------------------------------------------------
# ViT-B/16


class ViTB16(_TorchvisionModel):
    """ViT-B/16 (Dosovitskiy et al. 2021; torchvision's layout): 12 encoder blocks of width 768, 16 px patches.

    Input ``(B, 3, image_size, image_size)`` in [0, 1] (``image_size`` a multiple of 16, default 224: a
    14 x 14 patch grid; 64 gives 4 x 4); ImageNet mean/std normalisation inside the model unless
    ``normalize=False``. Output logits ``(B, num_classes)`` from the class token. 85.8 M parameters.

    CAM layers, each read as a ``(B, 768, h, w)`` map through :class:`TokenGrid` (``cam_reshape``):
    ``block{i}_norm1`` (torchvision's ``encoder.layers.encoder_layer_{i}.ln_1``: the LayerNorm'd input of
    block i's attention) and ``block{i}`` (block i's output), i = 0 .. 11. Default ``block11_norm1``, as
    pytorch-grad-cam's ViT tutorial (``blocks[-1].norm1``): the logits read only the class token after
    block 11, so gradient CAMs at ``block11`` itself are zero everywhere.

    ``pretrained``: a local torchvision-layout state dict; the position embeddings are interpolated
    (bicubic, torchvision's ``interpolate_embeddings``) when it was trained at another image size; the
    classifier ``heads`` is skipped when its class count differs. torchvision initialises ``heads.head`` to
    zero (for fine-tuning), so a fresh model's logits and gradients are all zero until it is trained.
    Randomisation stages: head, blocks 11-9 (+ the final LayerNorm), 8-6, 5-3, 2-0, embeddings (patch
    projection, class token, position embeddings).

    ``unsupported_methods``: guided backprop and guided Grad-CAM (the model has no ReLU, the guided
    gradient would be the plain gradient), DeepLift (captum has no rule for GELU, LayerNorm or the
    attention's softmax and products: it would return input x gradient).
    """

    model_name = "vit_b_16"
    default_cam_layer = "block11_norm1"
    head = "heads"
    patch_size = 16
    unsupported_methods = {
        "guided_backprop": "the model has no ReLU (GELU activations), so the guided gradient would be the "
                           "plain gradient (use saliency)",
        "guided_grad_cam": "the model has no ReLU (GELU activations), so its guided backprop would be the "
                           "plain gradient (use grad_cam with saliency)",
        "deeplift": "captum's DeepLift has no rule for GELU, LayerNorm or the attention's softmax and "
                    "products; gradients pass through them unchanged, so the result would be "
                    "input_x_gradient, not DeepLIFT",
    }

    def __init__(self, num_classes: int, *, image_size: int = 224, pretrained: str = "",
                 freeze_backbone: bool = False, normalize: bool = True) -> None:
        super().__init__()
        from torchvision.models.vision_transformer import VisionTransformer

        _check_classes(num_classes)
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16 \
                or image_size % self.patch_size:
            raise ValueError(f"vit_b_16: image_size must be a positive multiple of 16, got {image_size!r}")
        net = VisionTransformer(image_size=image_size, patch_size=self.patch_size, num_layers=12, num_heads=12,
                                hidden_dim=768, mlp_dim=3072, num_classes=num_classes)
        self.image_size, self.hidden_dim = image_size, net.hidden_dim
        self.input_norm = self._input_norm(normalize)
        self.conv_proj = net.conv_proj
        self.class_token = net.class_token
        self.encoder, self.heads = net.encoder, net.heads
        g = image_size // self.patch_size
        self.cam_reshape = {name: TokenGrid(g, g) for name in self.cam_layers}
        self._finish(num_classes, pretrained, freeze_backbone)

    def _adapt(self, key: str, theirs: torch.Tensor, ours: torch.Tensor) -> torch.Tensor | None:
        if key != "encoder.pos_embedding" or theirs.ndim != 3 or theirs.shape[2] != ours.shape[2]:
            return None
        from torchvision.models.vision_transformer import interpolate_embeddings

        try:
            return interpolate_embeddings(self.image_size, self.patch_size, {key: theirs})[key]
        except ValueError:  # not a square grid: reported as a shape mismatch
            return None

    @property
    def cam_layers(self) -> dict[str, nn.Module]:
        """Layer name -> module whose output is that token sequence (input to output)."""
        out = {}
        for i, block in enumerate(self.encoder.layers):
            out[f"block{i}_norm1"] = block.ln_1
            out[f"block{i}"] = block
        return out

    def randomisation_stages(self) -> list[tuple[str, list[str]]]:
        """``[(stage, [module or parameter names])]`` from the output down (see the class docstring)."""
        def blocks(*ids: int) -> list[str]:
            return [n for i in ids for n in self._owned(self, f"encoder.layers.encoder_layer_{i}")]

        return [("head", self._owned(self, "heads")),
                ("blocks11-9", ["encoder.ln", *blocks(11, 10, 9)]),
                ("blocks8-6", blocks(8, 7, 6)), ("blocks5-3", blocks(5, 4, 3)), ("blocks2-0", blocks(2, 1, 0)),
                ("embeddings", ["conv_proj", "class_token", "encoder.pos_embedding"])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            raise ValueError(
                f"vit_b_16: expected input (B, 3, {self.image_size}, {self.image_size}) with values in [0, 1], "
                f"got {tuple(x.shape)}; build the model with image_size={x.shape[-1]} for other sizes"
            )
        x = self.conv_proj(self.input_norm(x))
        n = x.shape[0]
        x = x.reshape(n, self.hidden_dim, -1).permute(0, 2, 1)
        x = torch.cat([self.class_token.expand(n, -1, -1), x], dim=1)
        return self.heads(self.encoder(x)[:, 0])
