"""Loss functions as plain functions of tensors (usable without the rest of curate)."""
from curate.losses.nt_xent import nt_xent

__all__ = ["nt_xent"]
