"""Two-lesion composites for class sensitivity: both lesions kept whole, apart, each with its own mask."""

from __future__ import annotations

from types import SimpleNamespace

import torch

from bench.train.control import dilate_masks, lesion_shift, two_lesion_composites


def _set(boxes, size: int = 16):
    """One image per box (y0, x0, h, w): noise with a bright lesion in the box, and its mask."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(len(boxes), 3, size, size, generator=g) * 0.3
    masks = torch.zeros(len(boxes), size, size, dtype=torch.bool)
    for i, (y, x, h, w) in enumerate(boxes):
        masks[i, y:y + h, x:x + w] = True
        images[i, :, y:y + h, x:x + w] = 0.7 + 0.1 * i
    return SimpleNamespace(images=images, masks=masks)


def test_lesions_already_apart_are_not_moved():
    s = _set([(1, 1, 3, 3), (10, 10, 3, 3)])
    assert lesion_shift(s.masks[0], s.masks[1], dilate=1) == (0, 0)
    c = two_lesion_composites(s, [0], [1], dilate=1)
    assert c["placed"].tolist() == [True] and c["shift"].tolist() == [[0, 0]]
    assert torch.equal(c["mask_a"][0], s.masks[0]) and torch.equal(c["mask_b"][0], s.masks[1])
    region = dilate_masks(s.masks[:1], 1)[0]
    assert torch.equal(c["images"][0][:, region], s.images[0][:, region])  # lesion A with the pixels around it
    assert torch.equal(c["images"][0][:, ~region], s.images[1][:, ~region])  # everything else is image B


def test_overlapping_lesions_are_set_apart_by_the_smallest_move_and_stay_whole():
    s = _set([(6, 6, 4, 4), (6, 7, 4, 4)])  # on top of each other
    # dilated by 1 px, A covers rows and columns 5-10, B rows 5-10 and columns 6-11: apart after 6 px up or down,
    # 5 px left or 7 px right (out of the frame); no diagonal move shorter than 5 px clears them
    assert lesion_shift(s.masks[0], s.masks[1], dilate=1) == (0, -5)
    c = two_lesion_composites(s, [0], [1], dilate=1)
    ma, mb = c["mask_a"][0], c["mask_b"][0]
    assert ma.sum() == s.masks[0].sum() and mb.sum() == s.masks[1].sum()  # both lesions whole
    assert not (dilate_masks(ma[None], 1)[0] & dilate_masks(mb[None], 1)[0]).any()  # and apart
    assert torch.equal(c["images"][0][:, mb], s.images[1][:, s.masks[1]])  # B's lesion untouched
    assert torch.allclose(c["images"][0][:, ma], torch.full_like(c["images"][0][:, ma], 0.7))  # A's lesion moved


def test_lesions_that_cannot_be_separated_in_the_frame_are_not_placed():
    s = _set([(1, 1, 12, 12), (2, 2, 12, 12)], size=16)
    assert lesion_shift(s.masks[0], s.masks[1], dilate=2) is None
    c = two_lesion_composites(s, [0], [1], dilate=2)
    assert c["placed"].tolist() == [False] and not c["mask_a"][0].any()
    assert torch.equal(c["images"][0], s.images[1])
