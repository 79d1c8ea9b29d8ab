"""Images with their lesion removed: what a model sees when the lesion is not there (model-verified ground truth).

For each image the best removal available is used, and named:

- ``redrawn`` (phantoms): the image drawn again by its generator without its lesion
  (:func:`bench.data.phantoms.redraw`). Every phantom draws background, lesion and finish from separate random
  streams, so this is the very image outside the lesion's mask, and inside it what was under the lesion. Used
  only after the same call *with* the lesion has reproduced the loaded image exactly (at the loaded size), so a
  phantom prepared by another generator version, or edited by hand, falls back to inpainting.
- ``inpainted`` (real data, and the fallback): the lesion mask dilated by ``dilate`` px (a square, as the
  composite control's) is filled by biharmonic inpainting from the pixels around it
  (``skimage.restoration.inpaint_biharmonic``, per channel): a smooth guess of the image's own background, not
  the true tissue under the lesion. A large lesion leaves a smooth patch a model may react to, so a drop
  measured on inpainted images is an estimate; the run folder names the removal of every image.
- ``none``: the image has no lesion mask (nothing to remove; returned unchanged).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

REDRAWN, INPAINTED, NONE = "redrawn", "inpainted", "none"


def dilate_mask(mask: np.ndarray, pixels: int) -> np.ndarray:
    """A bool mask (H, W) dilated by a square of side ``2 * pixels + 1`` (Chebyshev distance <= ``pixels``)."""
    from scipy import ndimage as ndi

    mask = np.asarray(mask, dtype=bool)
    if pixels <= 0 or not mask.any():
        return mask.copy()
    return ndi.binary_dilation(mask, structure=np.ones((3, 3), bool), iterations=int(pixels))


def inpaint_lesions(images: torch.Tensor, masks: torch.Tensor, *, dilate: int = 2) -> torch.Tensor:
    """``images`` (B, 3, H, W) float in [0, 1] with the region ``masks`` (B, H, W) bool, dilated by ``dilate`` px,
    filled by biharmonic inpainting from its surroundings; float32 (B, 3, H, W) on the CPU, clipped to [0, 1].
    An empty mask leaves its image unchanged. ``ValueError`` for mismatched shapes or ``dilate < 0``."""
    from skimage.restoration import inpaint_biharmonic

    images, masks = torch.as_tensor(images), torch.as_tensor(masks)
    if images.ndim != 4 or masks.ndim != 3 or images.shape[0] != masks.shape[0] or images.shape[-2:] != masks.shape[-2:]:
        raise ValueError(f"inpaint_lesions: images must be (B, C, H, W) and masks (B, H, W) of the same B, H, W; "
                         f"got {tuple(images.shape)} and {tuple(masks.shape)}")
    if dilate < 0:
        raise ValueError(f"inpaint_lesions: dilate must be >= 0 px, got {dilate}")
    out = images.detach().to("cpu", torch.float32).clone()
    for b in range(out.shape[0]):
        region = dilate_mask(masks[b].cpu().numpy(), dilate)
        if not region.any():
            continue
        img = out[b].permute(1, 2, 0).numpy().astype(np.float64)
        filled = inpaint_biharmonic(img, region, channel_axis=-1)
        out[b] = torch.from_numpy(np.clip(filled, 0.0, 1.0).astype(np.float32)).permute(2, 0, 1)
    return out


def as_loaded(image: np.ndarray, size: int) -> torch.Tensor:
    """A uint8 image (H, W) or (H, W, 3) as the loader gives it at ``size`` px: RGB (grey replicated), resized with
    PIL's bilinear filter, float32 (3, size, size) in [0, 1] (``uint8 / 255``, as :mod:`bench.data.arrays`)."""
    from bench.data.arrays import to_float_images

    rgb = Image.fromarray(np.asarray(image, dtype=np.uint8)).convert("RGB").resize((size, size), Image.BILINEAR)
    return to_float_images(torch.from_numpy(np.ascontiguousarray(np.asarray(rgb).transpose(2, 0, 1)))[None], None)[0]


def _redraw_options(key: str, root: str) -> dict | None:
    """The generator options of the prepared phantom ``key`` (None for a real dataset, or one this generator
    version did not write)."""
    from bench.data.cards import split_key
    from bench.data.phantoms import GENERATOR_VERSION
    from bench.data.prepare import read_info

    if not split_key(key)[0]:
        return None
    opts = read_info(key, root).get("options", {})
    if opts.get("generator_version") != GENERATOR_VERSION or "seed" not in opts:
        return None
    return opts


def remove_lesions(key: str, data, idx, *, root: str = "", dilate: int = 2) -> tuple[torch.Tensor, list[str]]:
    """The images ``data.images[idx]`` of dataset ``key`` (an :class:`bench.data.ImageSet` loaded from it) with
    their lesions removed, and how each was removed (``"redrawn"``, ``"inpainted"`` or ``"none"``; see the
    module docstring).

    Returns ``(images (B, 3, H, W) float32 on the CPU, [how] * B)``. ``dilate``: px the mask is dilated by before
    inpainting (the redrawn images need none)."""
    from bench.data.cards import split_key
    from bench.data.phantoms import redraw

    idx = [int(i) for i in idx]
    size = int(data.images.shape[-1])
    originals = data.images[idx].to("cpu", torch.float32) if idx else torch.zeros(0, 3, size, size)
    out = originals.clone()
    how = [NONE] * len(idx)
    opts = _redraw_options(key, root)
    card = getattr(data, "card", None)
    todo = []
    for b, i in enumerate(idx):
        if not bool(data.has_mask[i]):
            continue
        if opts is not None:
            kw = {"seed": opts["seed"], "confounder": opts.get("confounder", ""),
                  "confounder_p": float(opts.get("confounder_p", 0.0)),
                  "classes": tuple(card.classes) if card is not None else tuple(data.class_names),
                  "positive": getattr(card, "positive", "") or ""}
            base, label = split_key(key)[1], data.class_names[int(data.labels[i])]
            try:
                same = torch.equal(as_loaded(redraw(base, data.ids[i], label, **kw), size), originals[b])
            except ValueError:  # not an id this generator wrote
                same = False
            if same:
                out[b] = as_loaded(redraw(base, data.ids[i], label, lesion=False, **kw), size)
                how[b] = REDRAWN
                continue
        todo.append(b)
    if todo:
        out[todo] = inpaint_lesions(originals[todo], data.masks[[idx[b] for b in todo]], dilate=dilate)
        for b in todo:
            how[b] = INPAINTED
    return out, how


__all__ = ["INPAINTED", "NONE", "REDRAWN", "as_loaded", "dilate_mask", "inpaint_lesions", "remove_lesions"]
