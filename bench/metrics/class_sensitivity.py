"""Class sensitivity: does the map change with the class it is asked to explain?

An image that carries two lesions of two different classes, ``a`` and ``b`` (each with its own mask), is
explained twice: for class ``a`` (map ``S_a``) and for class ``b`` (map ``S_b``). With ``E(S, M)`` the share of the
map's positive mass inside mask ``M`` (the energy pointing game, :func:`bench.metrics.energy_pointing_game`):

    class_sensitivity = ( [E(S_a, M_a) - E(S_a, M_b)] + [E(S_b, M_b) - E(S_b, M_a)] ) / 2

Direction: higher is better; range [-1, 1]. 1 = each map puts all its positive mass on the lesion of the class
asked for; 0 = the map ignores the class asked for (a method that returns the same map whatever the target scores
exactly 0: its two terms cancel); negative = the map goes to the *other* class's lesion. Averaging the two asks
makes a map that always prefers one of the lesions (the larger, the brighter) score 0, not the share it happens
to put there. Each term is bounded by how concentrated the map is: a map with a quarter of its positive mass on
the asked lesion and none on the other scores 0.25 for that ask, so read it beside the energy pointing game.

Undefined: an empty mask gives NaN. A degenerate map (constant, non-finite, or without any positive value) carries
no class information: its term counts as 0 and the pair is flagged ``degenerate``. The masks must not overlap (a
pixel of both lesions would count for both classes): ``ValueError``.

Sources: Selvaraju et al. 2017 (Grad-CAM is class-discriminative, Guided Backprop is not); Sixt et al. 2020
("When explanations lie": modified-backprop methods that ignore the class); the two-object images of both.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.metrics.localisation import energy_pointing_game

DIRECTION = "higher"
RANGE = (-1.0, 1.0)


def _as_batch(x, name: str) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"class_sensitivity: {name} must be (H, W) or (B, H, W), got shape {a.shape}")
    return a


def class_sensitivity(saliency_a, saliency_b, mask_a, mask_b, *, return_parts: bool = False):
    """Class sensitivity of the maps of one image explained for two classes (see the module docstring).

    Args:
        saliency_a, saliency_b: the maps for class ``a`` and for class ``b``, (H, W) or (B, H, W), any real values
            (a map smaller than the masks is upsampled bilinearly, as for every localisation metric).
        mask_a, mask_b: the lesions of class ``a`` and ``b``, (H, W) or (B, H, W) bool, disjoint.
        return_parts: also return the per-ask terms and the degenerate flags.

    Returns:
        float64 (B,) (or () for (H, W) inputs) in [-1, 1]; NaN where a mask is empty. With ``return_parts``:
        ``(values, {"asked_a": E(S_a, M_a) - E(S_a, M_b), "asked_b": E(S_b, M_b) - E(S_b, M_a),
        "degenerate": bool (B,)})``.

    Raises:
        ValueError: shapes that differ, or masks that overlap (the message gives the first pair).
    """
    single = np.ndim(saliency_a) == 2
    sa, sb = _as_batch(saliency_a, "saliency_a"), _as_batch(saliency_b, "saliency_b")
    ma, mb = _as_batch(mask_a, "mask_a").astype(bool), _as_batch(mask_b, "mask_b").astype(bool)
    if sa.shape != sb.shape or ma.shape != mb.shape or sa.shape[0] != ma.shape[0]:
        raise ValueError(f"class_sensitivity: maps {sa.shape} and {sb.shape}, masks {ma.shape} and {mb.shape} must "
                         "be two maps of one shape and two masks of one shape, with the same batch size")
    overlap = (ma & mb).reshape(len(ma), -1).any(1)
    if overlap.any():
        raise ValueError(f"class_sensitivity: the two lesion masks overlap in pair {int(np.flatnonzero(overlap)[0])}; "
                         "each pixel must belong to at most one of the two lesions")

    def share(s, m):
        return energy_pointing_game(s, m, return_degenerate=True)

    (aa, dega), (ab, _) = share(sa, ma), share(sa, mb)
    (bb, degb), (ba, _) = share(sb, mb), share(sb, ma)
    asked_a, asked_b = aa - ab, bb - ba  # a degenerate map scores 0 on both masks: its term is 0
    values = (asked_a + asked_b) / 2.0
    degenerate = np.asarray(dega, bool) | np.asarray(degb, bool)
    if single:
        values, asked_a, asked_b, degenerate = values[0], asked_a[0], asked_b[0], degenerate[0]
    if return_parts:
        return values, {"asked_a": asked_a, "asked_b": asked_b, "degenerate": degenerate}
    return values


__all__ = ["DIRECTION", "RANGE", "class_sensitivity"]
