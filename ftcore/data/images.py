"""``ImageSet``: images and labels that always have the same, checked format."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import ParameterError, check_pixels, check_type


@dataclass(frozen=True, eq=False)
class ImageSet(torch.utils.data.Dataset):
    """A labelled set of grey images, usable as a PyTorch ``Dataset``.

    Attributes:
        images: float32 tensor of shape (N, 1, 28, 28), values in [0, 1].
        labels: int64 tensor of shape (N,), values in 0..len(classes)-1.
        classes: the name of each class, indexed by label.
        name: where the data came from, e.g. ``"mnist"`` (shown in plots and errors).

    ``data[i]`` gives ``(image, label)``; ``data[list_of_indices]`` gives a whole batch at once,
    which is what :func:`ftcore.data.make_loader` uses to stay fast.
    """

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    name: str = "images"

    def __post_init__(self) -> None:
        x, y, who = self.images, self.labels, f"ImageSet {self.name!r}"
        check_type(self.name, "name", str)
        check_type(x, f"{who}: images", torch.Tensor, hint="convert with torch.as_tensor(x)")
        check_type(y, f"{who}: labels", torch.Tensor, hint="convert with torch.as_tensor(y)")
        if not isinstance(self.classes, tuple) or not self.classes \
                or not all(isinstance(c, str) for c in self.classes):
            raise ParameterError(f"{who}: classes={self.classes!r} must be a non-empty tuple "
                                 "of class names, e.g. ('0', '1') or tuple(map(str, range(10)))")
        if x.dim() != 4 or x.shape[1] != 1:
            hint = ": add a channel axis with images.unsqueeze(1)" if x.dim() == 3 else ""
            raise ParameterError(f"{who}: images must have shape (N, 1, H, W), got "
                                 f"{tuple(x.shape)}{hint}")
        if x.is_floating_point() and x.dtype != torch.float32:
            raise ParameterError(f"{who}: images must be float32, got {x.dtype} (ftcore's "
                                 "models are float32): convert with images.float()")
        check_pixels(x, who)  # floats, finite, in [0, 1]: "divide by 255" when they are not
        if y.shape != (x.shape[0],) or y.dtype != torch.int64:
            raise ParameterError(f"{who}: labels must be int64 of shape ({x.shape[0]},), got "
                                 f"{y.dtype} of shape {tuple(y.shape)}; convert with "
                                 "labels.long()" if y.shape == (x.shape[0],) else
                                 f"{who}: labels must be int64 of shape ({x.shape[0]},) (one "
                                 f"per image), got {y.dtype} of shape {tuple(y.shape)}")
        if len(y) and (y.min() < 0 or y.max() >= len(self.classes)):
            raise ParameterError(f"{who}: labels must lie in 0..{len(self.classes) - 1} (one "
                                 f"per class name), got {int(y.min())}..{int(y.max())}")

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, index: torch.Tensor, name: str | None = None) -> ImageSet:
        """The examples at ``index`` (an int64 tensor of positions, or a boolean mask)."""
        return ImageSet(self.images[index], self.labels[index], self.classes, name or self.name)

    def class_counts(self) -> torch.Tensor:
        """Examples per class: int64 tensor of shape (num_classes,)."""
        return torch.bincount(self.labels, minlength=self.num_classes)

    def __repr__(self) -> str:
        return (f"ImageSet(name={self.name!r}, n={len(self)}, image_shape="
                f"{tuple(self.images.shape[1:])}, classes={self.num_classes})")
