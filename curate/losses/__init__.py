"""Loss functions as plain functions of tensors (usable without the rest of curate)."""
from curate.losses.barlow_twins import barlow_twins_loss
from curate.losses.cosine import negative_cosine, normalized_mse
from curate.losses.dino import dino_loss, teacher_temperature, update_center
from curate.losses.infonce import infonce
from curate.losses.nt_xent import multi_view_nt_xent, nt_xent
from curate.losses.reconstruction import masked_mse
from curate.losses.vicreg import covariance_loss, invariance_loss, variance_loss, vicreg_loss

__all__ = ["barlow_twins_loss", "covariance_loss", "dino_loss", "infonce", "invariance_loss", "masked_mse", "multi_view_nt_xent",
           "negative_cosine", "normalized_mse", "nt_xent", "teacher_temperature", "update_center", "variance_loss",
           "vicreg_loss"]
