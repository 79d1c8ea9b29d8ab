"""Images with their lesion removed: the phantoms redrawn without it, and inpainting where they cannot be."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import load_dataset, prepare
from bench.data.cards import load_card
from bench.data.lesion_free import INPAINTED, NONE, REDRAWN, dilate_mask, inpaint_lesions, remove_lesions
from bench.data.paths import dataset_dir
from bench.data.phantoms import PHANTOMS, draw, redraw
from bench.data.phantoms.common import image_rng


@pytest.mark.parametrize("key", PHANTOMS.names())
def test_each_phantom_without_its_lesion_differs_only_inside_the_mask(key):
    card = load_card(key)
    lesion_classes = [c for c in card.classes if c != "Normal"]
    for index, label in enumerate(lesion_classes[:2]):
        with_lesion = draw(key, label, seed=1, index=index)
        without = PHANTOMS.get(key)(image_rng(1, key, index), label, lesion=False)
        assert with_lesion.mask is not None and with_lesion.mask.any()
        np.testing.assert_array_equal(without.mask, with_lesion.mask)  # the mask it would have
        differ = (with_lesion.image != without.image)
        differ = differ.any(-1) if differ.ndim == 3 else differ
        assert differ.any(), f"{key}: the lesion changed nothing"
        assert not (differ & ~with_lesion.mask).any(), f"{key}: pixels outside the lesion changed"


def _prepared(root, key, n: int = 2):
    prepare(key, root=str(root), scale=0.01, min_per_class=n, max_per_class=n)
    return load_dataset(key, root=str(root), image_size=32)


def test_redraw_reproduces_every_written_image_with_a_confounder_and_its_decorrelated_copies(tmp_path):
    key = "synthetic-lidc_idri+tag@1"
    data = _prepared(tmp_path, key, n=5)  # one test image per class, each with two decorrelated copies
    card = load_card("lidc_idri")
    folder = dataset_dir(key, str(tmp_path))
    copies = [i for i in data.ids if i.endswith("-cue") or i.endswith("-nocue")]
    assert copies  # the decorrelated split is there
    for image_id, label in zip(data.ids, data.labels.tolist()):
        stored = np.asarray(Image.open(folder / f"{image_id}.png"))
        again = redraw("lidc_idri", image_id, card.classes[label], seed=0, confounder="tag", confounder_p=1.0,
                       classes=card.classes, positive=card.positive)
        np.testing.assert_array_equal(again, stored, err_msg=image_id)
    with pytest.raises(ValueError, match="not an image id of phantom"):
        redraw("lidc_idri", "cov_x-00001", "Benign")


def test_remove_lesions_redraws_phantoms_and_inpaints_an_edited_image(tmp_path):
    key = "synthetic-cov_x"
    data = _prepared(tmp_path, key)
    normal = int(np.flatnonzero(~data.has_mask.numpy())[0])  # a Normal radiograph: no lesion
    idx = [i for i in range(len(data.ids)) if bool(data.has_mask[i])][:4] + [normal]
    out, how = remove_lesions(key, data, idx, root=str(tmp_path))
    assert how == [REDRAWN] * 4 + [NONE]
    x = data.images[idx]
    for b, i in enumerate(idx[:4]):
        region = torch.from_numpy(dilate_mask(data.masks[i].numpy(), 2))  # the resize blurs the border by a pixel
        assert torch.equal(out[b][:, ~region], x[b][:, ~region])  # the very same image outside the lesion
        assert (out[b] - x[b]).abs().amax() > 0.05  # and the lesion gone inside
    assert torch.equal(out[4], x[4])  # no lesion: nothing removed
    # an image that is not what the generator wrote (edited by hand) is inpainted, not redrawn
    first = data.ids[idx[0]]
    path = dataset_dir(key, str(tmp_path)) / f"{first}.png"
    arr = np.asarray(Image.open(path)).copy()
    arr[:4, :4] = 255 - arr[:4, :4]
    Image.fromarray(arr).save(path)
    edited = load_dataset(key, root=str(tmp_path), image_size=32)
    _, how = remove_lesions(key, edited, idx[:2], root=str(tmp_path))
    assert how == [INPAINTED, REDRAWN]


def test_inpainting_fills_a_flat_background_exactly_and_leaves_the_rest():
    img = torch.full((2, 3, 16, 16), 0.3)
    img[1] = torch.linspace(0, 1, 16)[None, None, :].expand(3, 16, 16)  # a ramp: biharmonic continues it
    masks = torch.zeros(2, 16, 16, dtype=torch.bool)
    masks[:, 6:10, 6:10] = True
    lesioned = img.clone()
    lesioned[:, :, 6:10, 6:10] = 0.9
    out = inpaint_lesions(lesioned, masks, dilate=1)
    torch.testing.assert_close(out, img, atol=1e-5, rtol=0)
    region = torch.from_numpy(dilate_mask(masks[0].numpy(), 1))
    assert torch.equal(out[:, :, ~region], lesioned[:, :, ~region])
    assert torch.equal(inpaint_lesions(lesioned, torch.zeros_like(masks)), lesioned)  # empty mask: unchanged
    with pytest.raises(ValueError, match="same B, H, W"):
        inpaint_lesions(lesioned, masks[:1])
    with pytest.raises(ValueError, match="dilate must be >= 0"):
        inpaint_lesions(lesioned, masks, dilate=-1)
