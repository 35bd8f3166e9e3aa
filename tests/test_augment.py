"""ftcore.augment and ``fit(..., augment=...)``: a fresh random variant of every training
image (never of a validation image), and a clear error for augmentations that break the input."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from ftcore import fit
from ftcore.augment import augment_batch, small_affine
from ftcore.models import SmallCNN


def tiny_cnn() -> SmallCNN:
    torch.manual_seed(0)
    return SmallCNN(width=2, hidden=8, dropout=0.0)


def same_digit(mnist, n: int = 8) -> torch.Tensor:
    """n copies of one real digit: (n, 1, 28, 28)."""
    return mnist.train.images[:1].repeat(n, 1, 1, 1)


def test_each_image_gets_its_own_random_transform(mnist, seeded):
    batch = same_digit(mnist)
    out = augment_batch(small_affine(), batch)
    assert out.shape == batch.shape and out.dtype == batch.dtype
    distinct = {tuple(image.flatten().tolist()) for image in out}
    assert len(distinct) == len(batch)  # eight copies in, eight different variants out


def test_a_v2_transform_on_a_whole_batch_draws_one_transform(mnist, seeded):
    """The trap augment_batch avoids: called on the batch, v2 moves every image alike."""
    out = small_affine()(same_digit(mnist))
    assert all(torch.equal(image, out[0]) for image in out)


def test_small_affine_keeps_pixels_in_range_and_the_ink_mostly(mnist, seeded):
    images = mnist.train.images[:64]
    out = augment_batch(small_affine(), images)
    assert out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, images)
    ink_in, ink_out = images.sum(dim=(1, 2, 3)), out.sum(dim=(1, 2, 3))
    assert ((ink_out / ink_in - 1).abs() < 0.5).all()  # shifted and turned, not cut away


@pytest.mark.parametrize("transform", [v2.CenterCrop(20), v2.Resize(14),
                                       lambda x: x.repeat(3, 1, 1)],
                         ids=["crop", "resize", "three-channels"])
def test_an_augmentation_that_changes_the_shape_raises(transform, mnist):
    with pytest.raises(ValueError, match=r"of shape \(1, 28, 28\) into .* must keep the shape"):
        augment_batch(transform, mnist.train.images[:4])


def test_an_augmentation_that_changes_the_dtype_raises(mnist):
    with pytest.raises(ValueError, match="torch.uint8"):
        augment_batch(lambda x: (x * 255).to(torch.uint8), mnist.train.images[:4])


def test_bad_arguments_raise(mnist):
    with pytest.raises(TypeError, match="must be a callable"):
        augment_batch("rotate", mnist.train.images[:4])
    with pytest.raises(ValueError, match=r"expects a batch \(N, C, H, W\)"):
        augment_batch(small_affine(), mnist.train.images[0])
    with pytest.raises(ValueError, match="translate=1.5"):
        small_affine(translate=1.5)


def test_fit_augments_every_training_image_once_per_epoch_and_no_validation_image(mnist_small):
    train, val = mnist_small
    seen = []

    def spy(image):
        seen.append(image)
        return image

    fit(tiny_cnn(), train, val, epochs=2, batch_size=64, augment=spy)
    assert len(seen) == 2 * len(train)
    train_images = {tuple(im.flatten().tolist()) for im in train.images}
    assert all(tuple(im.flatten().tolist()) in train_images for im in seen)


def test_identity_augmentation_changes_nothing(mnist_small):
    train, val = mnist_small
    plain, identity = tiny_cnn(), tiny_cnn()
    a = fit(plain, train, val, epochs=2)
    b = fit(identity, train, val, epochs=2, augment=lambda image: image)
    assert a.column("val_loss") == b.column("val_loss")


def test_augmented_fit_is_reproducible_and_differs_from_plain(mnist_small):
    train, val = mnist_small
    runs = [fit(tiny_cnn(), train, val, epochs=2, seed=3, augment=small_affine())
            for _ in range(2)]
    plain = fit(tiny_cnn(), train, val, epochs=2, seed=3)
    assert runs[0].column("train_loss") == runs[1].column("train_loss")
    assert runs[0].column("train_loss") != plain.column("train_loss")


def test_fit_with_a_shape_changing_augmentation_raises(mnist_small):
    train, _ = mnist_small
    with pytest.raises(ValueError, match="must keep the shape"):
        fit(tiny_cnn(), train, epochs=1, augment=v2.CenterCrop(24))
