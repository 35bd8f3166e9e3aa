"""Data augmentation: a fresh random variant of every training image, in every epoch.

``fit(model, train, augment=small_affine())`` passes each training batch through
:func:`augment_batch` before the forward pass; validation and test images are never augmented.

Why per image: a ``torchvision.transforms.v2`` transform called on a batch tensor (N, 1, 28, 28)
draws ONE set of random parameters and applies it to the whole batch (every digit rotated by
the same angle). :func:`augment_batch` calls the transform on each image separately, so every
image gets its own angle, shift and scale. On 28x28 images this costs well under a millisecond
per image.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:  # torchvision is imported only when an augmentation is made: ftcore.train
    from torchvision.transforms import v2  # imports this module, and most runs never augment

Transform = Callable[[torch.Tensor], torch.Tensor]


def small_affine(degrees: float = 10, translate: float = 0.1,
                 scale: tuple[float, float] = (0.9, 1.1)) -> v2.RandomAffine:
    """A small random rotation (+-``degrees``), shift (up to ``translate`` of the width) and
    zoom (a factor in ``scale``) of one image (1, H, W); the uncovered border is filled with 0
    (background). Digits stay digits under such changes, so the label is unchanged."""
    if not 0 <= translate < 1:
        raise ValueError(f"translate={translate!r} must be in [0, 1): a fraction of the width")
    from torchvision.transforms import v2

    return v2.RandomAffine(degrees=degrees, translate=(translate, translate), scale=scale)


def augment_batch(transform: Transform, images: torch.Tensor) -> torch.Tensor:
    """Apply ``transform`` to every image of ``images`` (N, C, H, W) separately.

    Each call of ``transform`` gets one image (C, H, W) and must return an image of the same
    shape (it draws from PyTorch's global random generator, which ``fit`` seeds). Returns a new
    batch (N, C, H, W); raises ``ValueError`` if the transform changes the shape or the dtype.
    """
    if not callable(transform):
        raise TypeError(f"augment={transform!r} must be a callable transform of one image, "
                        "e.g. ftcore.augment.small_affine()")
    if images.dim() != 4:
        raise ValueError(f"augment_batch expects a batch (N, C, H, W), got {tuple(images.shape)}")
    out = torch.empty_like(images)
    for i, image in enumerate(images):
        new = transform(image)
        if not isinstance(new, torch.Tensor) or new.shape != image.shape \
                or new.dtype != image.dtype:
            got = (f"{new.dtype} of shape {tuple(new.shape)}" if isinstance(new, torch.Tensor)
                   else type(new).__name__)
            raise ValueError(
                f"augmentation {transform!r} turned an image {image.dtype} of shape "
                f"{tuple(image.shape)} into {got}. An augmentation must keep the shape and "
                "dtype (the model expects 28x28 images): drop resizing or cropping transforms, "
                "or pad/resize back to the input size inside the transform.")
        out[i] = new
    return out
