import numpy as np
import torch

from bench.attribution.references import grid_oracle, is_reference, layer_grid, oracle, reference_maps
from bench.metrics import energy_pointing_game, pointing_game
from bench.models import create_model


def _masks():
    m = torch.zeros(3, 16, 16, dtype=torch.bool)
    m[0, 2:4, 3:5] = True  # 4 px: smaller than a cell of a 4 x 4 grid
    m[1, 8:16, 0:8] = True  # a whole quadrant
    m[2, 5:11, 9:14] = True
    return m


def test_the_full_resolution_oracle_scores_one_on_the_pointing_games():
    masks = _masks()
    maps = oracle(masks).numpy()
    assert maps.dtype == np.float32 and set(np.unique(maps)) == {0.0, 1.0}
    np.testing.assert_array_equal(pointing_game(maps, masks.numpy()), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(energy_pointing_game(maps, masks.numpy()), [1.0, 1.0, 1.0])


def test_the_grid_oracle_is_the_pooled_mask_upsampled_bilinearly():
    masks = torch.zeros(1, 4, 4, dtype=torch.bool)
    masks[0, 0, 0] = masks[0, 0, 1] = masks[0, 1, 0] = True  # 3 of the top-left 2 x 2 cell
    got = grid_oracle(masks, (2, 2))[0]
    # by hand: cells [[0.75, 0], [0, 0]]; bilinear (align_corners=False) from 2 to 4 samples at source
    # coordinates -0.25, 0.25, 0.75, 1.25 -> clamped 0, 0.25, 0.75, 1 -> weights (1, 0), (.75, .25), (.25, .75), (0, 1)
    w = torch.tensor([[1.0, 0.0], [0.75, 0.25], [0.25, 0.75], [0.0, 1.0]])
    cells = torch.tensor([[0.75, 0.0], [0.0, 0.0]])
    torch.testing.assert_close(got, w @ cells @ w.T)
    assert float(got[0, 0]) == 0.75 and float(got[3, 3]) == 0.0


def test_a_coarse_grid_cannot_point_at_a_small_lesion_but_the_full_oracle_can():
    masks = _masks()
    coarse = grid_oracle(masks, (2, 2)).numpy()
    fine = grid_oracle(masks, (16, 16)).numpy()
    np.testing.assert_array_equal(fine, oracle(masks).numpy())  # a grid at the input size is the mask
    pg = pointing_game(coarse, masks.numpy())
    assert pg[0] == 0.0 and pg[1] == 1.0  # the 4 px lesion is lost in its 8 x 8 cell; the quadrant is a cell


def test_the_grid_of_a_layer_is_measured_on_the_model():
    model = create_model("ff_vgg19", 2, width=0.125, batch_norm=True).eval()
    images = torch.rand(2, 3, 64, 64)
    assert layer_grid(model, images, "block5_conv3") == (4, 4)
    assert layer_grid(model, images, "block3_pool") == (8, 8)
    masks = torch.zeros(2, 64, 64, dtype=torch.bool)
    masks[:, 10:20, 30:40] = True
    maps = reference_maps("oracle_grid", masks, model=model, images=images, layer="block3_pool")
    torch.testing.assert_close(maps, grid_oracle(masks, (8, 8)))
    at5 = reference_maps("oracle_grid@block5_conv3", masks, model=model, images=images, layer="block3_pool")
    torch.testing.assert_close(at5, grid_oracle(masks, (4, 4)))
    assert model.training is False
    assert is_reference("oracle") and is_reference("oracle_grid@block5_conv3") and not is_reference("oracle@x")
    assert not is_reference("grad_cam")
