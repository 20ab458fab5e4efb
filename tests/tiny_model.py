"""A tiny TL-Octree configuration shared by the model, training and inference tests."""

from image2lego.core.model import ModelConfig

TINY = ModelConfig(
    latent_dim=16,
    dec_channels=(16, 16, 16, 8, 4),
    enc_channels=(4, 8, 8, 16, 16),
    img_channels=(4, 8, 8, 8),
    img_hidden=32,
)
