import torch

from qwenvl.models.posembed import resize_grid, sincos_1d, sincos_2d


def test_sincos_2d_shape_and_channel_layout():
    table = sincos_2d(16, 3, 5).reshape(3, 5, 16)
    # First half of the channels depends on the column only, second half on the row only.
    assert torch.allclose(table[0, :, :8], table[2, :, :8])
    assert torch.allclose(table[:, 0, 8:], table[:, 4, 8:])
    assert not torch.allclose(table[:, 0, :8], table[:, 1, :8])
    assert torch.allclose(table[1, 2, :8], sincos_1d(8, torch.tensor([2]))[0])


def test_sincos_2d_is_not_symmetric_under_transpose():
    table = sincos_2d(32, 4, 4).reshape(4, 4, 32)
    assert not torch.allclose(table, table.transpose(0, 1))


def test_resize_grid_identity_and_shape():
    table = torch.randn(16, 8)
    assert resize_grid(table, (4, 4), (4, 4)) is table
    assert resize_grid(table, (4, 4), (8, 8)).shape == (64, 8)
