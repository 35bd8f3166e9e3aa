"""Tests for ftcore.shifts: the corruptions, the evaluation table and the shift detectors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import nn

from ftcore.data import ImageSet
from ftcore.models import SmallCNN
from ftcore.shifts import (
    SEVERITIES,
    SHIFTS,
    Shift,
    apply_shift,
    confidence_auroc,
    domain_classifier_accuracy,
    evaluate_domains,
    evaluate_shifts,
    features,
    random_shifts,
    warp,
)

BILINEAR = TF.InterpolationMode.BILINEAR

NAMES = ["rotation", "shear", "scale", "translation", "inversion", "noise", "blur", "contrast",
         "elastic", "occlusion"]


@pytest.fixture(scope="module")
def digits(mnist):
    """48 real MNIST test digits (ImageSet)."""
    return mnist.test.subset(torch.arange(48))


class Lookup(nn.Module):
    """An oracle for stored images: the label of the nearest stored image, with certainty."""

    def __init__(self, data: ImageSet) -> None:
        super().__init__()
        self.register_buffer("stored", data.images.flatten(1))
        self.register_buffer("labels", data.labels)
        self.features = nn.Flatten()

    def forward(self, x):
        nearest = torch.cdist(x.flatten(1), self.stored).argmin(dim=1)
        return 50.0 * F.one_hot(self.labels[nearest], 10).float()


class Uniform(nn.Module):
    """Zero logits: every class equally likely (argmax picks class 0)."""

    def forward(self, x):
        return torch.zeros(len(x), 10)


# --- the family --------------------------------------------------------------------------------

def test_registry_names_levels_and_flags():
    assert list(SHIFTS) == NAMES
    assert SEVERITIES == (1, 2, 3, 4, 5)
    for name, shift in SHIFTS.items():
        assert shift.name == name and len(shift.levels) == 5 and callable(shift.function)
    assert {n for n, s in SHIFTS.items() if not s.random} == {"scale", "blur", "contrast"}


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_range_are_kept_and_input_untouched(digits, name):
    x = digits.images
    before = x.clone()
    for severity in SEVERITIES:
        y = apply_shift(x, name, severity, seed=3)
        assert y.shape == x.shape and y.dtype == x.dtype
        assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert torch.equal(x, before), "the input batch is not modified in place"
    assert apply_shift(x[:0], name, 5).shape == (0, 1, 28, 28), "an empty batch stays empty"


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_images_other_seed_differs_for_random_shifts(digits, name):
    x = digits.images
    first, again = apply_shift(x, name, 3, seed=7), apply_shift(x, name, 3, seed=7)
    assert torch.equal(first, again)
    other = apply_shift(x, name, 3, seed=8)
    assert torch.equal(first, other) != SHIFTS[name].random


@pytest.mark.parametrize("name", [n for n in NAMES if SHIFTS[n].random])
def test_random_parameters_are_drawn_per_image(digits, name):
    copies = digits.images[:1].repeat(16, 1, 1, 1)  # one digit, 16 times
    y = apply_shift(copies, name, 4, seed=0)
    assert not all(torch.equal(y[0], y[i]) for i in range(1, 16))


@pytest.mark.parametrize("name", NAMES)
def test_severity_is_monotone_in_mean_pixel_change(digits, name):
    x = digits.images
    change = [(apply_shift(x, name, s, seed=1) - x).abs().mean().item() for s in SEVERITIES]
    assert change[0] > 0, "severity 1 already changes the images"
    assert all(b >= a for a, b in zip(change, change[1:], strict=False)), change


def test_seeded_draws_do_not_touch_the_global_random_state(digits):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for name in NAMES:
        apply_shift(digits.images[:4], name, 2, seed=0)
    assert torch.equal(torch.rand(3), expected)


# --- what each shift does, checked against independent computations ----------------------------

def test_full_inversion_is_the_negative(digits):
    x = digits.images
    assert torch.allclose(apply_shift(x, "inversion", 5), 1 - x)
    partial = apply_shift(x, "inversion", 1)
    inverted_columns = (partial - x).abs().sum(dim=(1, 2)) > 0  # (N, W) columns that changed
    assert (inverted_columns.sum(dim=1) <= round(0.2 * 28)).all()


def test_noise_has_the_stated_standard_deviation():
    grey = torch.full((64, 1, 28, 28), 0.5)
    for severity, sigma in zip(SEVERITIES[:2], SHIFTS["noise"].levels, strict=False):
        residual = apply_shift(grey, "noise", severity) - grey  # sigma <= 0.2: clipping is rare
        assert residual.std().item() == pytest.approx(sigma, rel=0.05)
        assert abs(residual.mean().item()) < 0.01


def test_contrast_keeps_each_mean_and_scales_the_spread(digits):
    x = digits.images
    for severity, factor in zip(SEVERITIES, SHIFTS["contrast"].levels, strict=True):
        y = apply_shift(x, "contrast", severity)
        assert torch.allclose(y.mean(dim=(1, 2, 3)), x.mean(dim=(1, 2, 3)), atol=1e-5)
        assert torch.allclose(y.std(dim=(1, 2, 3)), factor * x.std(dim=(1, 2, 3)), rtol=1e-4)


def test_translation_moves_the_centre_of_mass_by_the_stated_distance(digits):
    x = digits.images
    rows, cols = torch.arange(28.0)[:, None], torch.arange(28.0)[None, :]

    def centre(images):
        mass = images[:, 0].sum(dim=(1, 2))
        return torch.stack([(images[:, 0] * rows).sum(dim=(1, 2)) / mass,
                            (images[:, 0] * cols).sum(dim=(1, 2)) / mass], dim=1)

    for severity, pixels in zip(SEVERITIES[:3], SHIFTS["translation"].levels, strict=False):
        y = apply_shift(x, "translation", severity)
        whole = torch.isclose(y.sum(dim=(1, 2, 3)), x.sum(dim=(1, 2, 3)))  # no ink pushed out
        assert whole.float().mean() > 0.5
        moved = (centre(y[whole]) - centre(x[whole])).abs()  # (n, 2): rows, columns
        # each axis moves by 0 or `pixels` (a diagonal moves both), and at least one moves
        steps = moved / pixels
        assert torch.allclose(steps, steps.round(), atol=1e-3), moved
        assert ((steps.round() == 0) | (steps.round() == 1)).all()
        assert steps.round().sum(dim=1).min() >= 1


def test_scale_shrinks_the_ink_by_the_area_factor(digits):
    x = digits.images
    for severity, factor in zip(SEVERITIES, SHIFTS["scale"].levels, strict=True):
        ratio = apply_shift(x, "scale", severity).sum() / x.sum()
        assert ratio.item() == pytest.approx(factor ** 2, rel=0.1)


def test_occlusion_pastes_one_grey_square_of_the_stated_side():
    black = torch.zeros(20, 1, 28, 28)
    for severity, side in zip(SEVERITIES, SHIFTS["occlusion"].levels, strict=True):
        y = apply_shift(black, "occlusion", severity, seed=severity)
        assert ((y == 0.5).sum(dim=(1, 2, 3)) == side * side).all()
        assert ((y == 0.5) | (y == 0)).all()


def test_elastic_displacement_has_the_stated_rms_length():
    # On a horizontal ramp I(x) = x / 27, bilinear sampling at x + dx reads (x + dx) / 27:
    # the change times 27 is the horizontal displacement (away from the zero-padded border).
    ramp = (torch.arange(28.0) / 27).expand(200, 1, 28, 28).contiguous()
    for severity, rms in zip(SEVERITIES, SHIFTS["elastic"].levels, strict=True):
        dx = (apply_shift(ramp, "elastic", severity) - ramp)[:, 0, 6:-6, 6:-6] * 27
        # an isotropic field puts half of the mean squared length in each axis
        assert dx.square().mean().sqrt().item() == pytest.approx(rms / math.sqrt(2), rel=0.2)


def test_batched_warp_is_torchvisions_elastic(digits):
    x = digits.images[:6]
    g = torch.Generator().manual_seed(0)
    displacement = 0.1 * torch.randn(6, 28, 28, 2, generator=g)
    expected = torch.stack([TF.elastic(image, displacement[i:i + 1], interpolation=BILINEAR)
                            for i, image in enumerate(x)])
    assert torch.allclose(warp(x, displacement), expected, atol=1e-5)


# --- bad input ---------------------------------------------------------------------------------

def test_unknown_shift_lists_the_accepted_names(digits):
    with pytest.raises(ValueError, match="rotaton") as error:
        apply_shift(digits.images, "rotaton", 1)
    assert all(repr(name) in str(error.value) for name in NAMES)


@pytest.mark.parametrize("severity", [0, 6, -1, 2.5, True, "3"])
def test_severity_outside_one_to_five_is_refused(digits, severity):
    with pytest.raises(ValueError, match=r"severity=.*1.*5"):
        apply_shift(digits.images, "blur", severity)


@pytest.mark.parametrize("bad, message", [
    (torch.rand(4, 28, 28), "unsqueeze|reshape"),
    (torch.rand(4, 3, 28, 28), r"\(N, 1, H, W\)"),
    ((torch.rand(4, 1, 28, 28) * 255).to(torch.uint8), "255"),
    (torch.rand(4, 1, 28, 28) * 2, r"\[0, 1\]"),
])
def test_wrong_images_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        apply_shift(bad, "noise", 1)


def test_evaluate_shifts_checks_every_name_before_running(digits):
    with pytest.raises(ValueError, match="fog"):
        evaluate_shifts(Uniform(), digits, shifts=["rotation", "fog"])
    with pytest.raises(ValueError, match="severity"):
        evaluate_shifts(Uniform(), digits, severities=[1, 7])


# --- ImageSets and augmentation ----------------------------------------------------------------

def test_an_imageset_comes_back_as_an_imageset_with_its_labels(digits):
    shifted = apply_shift(digits, "rotation", 2, seed=4)
    assert isinstance(shifted, ImageSet)
    assert torch.equal(shifted.labels, digits.labels) and shifted.classes == digits.classes
    assert torch.equal(shifted.images, apply_shift(digits.images, "rotation", 2, seed=4))
    assert "rotation 2" in shifted.name


def test_random_shifts_uses_only_the_named_shifts_on_the_asked_fraction(digits):
    negatives = random_shifts(digits, ["inversion"], severities=[5], seed=0)
    assert torch.allclose(negatives.images, 1 - digits.images)
    assert torch.equal(negatives.labels, digits.labels)
    assert torch.equal(random_shifts(digits, fraction=0.0).images, digits.images)
    half = random_shifts(digits, ["inversion"], severities=[5], fraction=0.5, seed=1)
    changed = (half.images != digits.images).flatten(1).any(dim=1).float().mean().item()
    assert 0.25 < changed < 0.75
    again = random_shifts(digits, ["rotation", "noise"], seed=2)
    assert torch.equal(again.images, random_shifts(digits, ["rotation", "noise"], seed=2).images)
    with pytest.raises(ValueError, match="fraction"):
        random_shifts(digits, fraction=1.5)
    with pytest.raises(ValueError, match="fog"):
        random_shifts(digits, ["fog"])


# --- the evaluation table ----------------------------------------------------------------------

def test_evaluation_table_structure(digits):
    model = SmallCNN(width=2, hidden=8).eval()
    records = evaluate_shifts(model, digits, shifts=["blur", "noise"], severities=[1, 4])
    assert [(r["shift"], r["severity"]) for r in records] == [
        ("none", 0), ("blur", 1), ("blur", 4), ("noise", 1), ("noise", 4)]
    for r in records:
        assert set(r) == {"shift", "severity", "n", "accuracy", "confidence", "wrong_confidence"}
        assert r["n"] == len(digits)
        assert 0 <= r["accuracy"] <= 1 and 0.1 - 1e-6 <= r["confidence"] <= 1


def test_evaluation_of_a_know_nothing_model(digits):
    records = evaluate_shifts(Uniform(), digits, shifts=["rotation"], severities=[5])
    share_of_zeros = (digits.labels == 0).float().mean().item()
    for r in records:
        assert r["accuracy"] == pytest.approx(share_of_zeros)
        assert r["confidence"] == pytest.approx(0.1)


def test_an_oracle_is_perfect_on_clean_and_identity_shifted_data(digits, monkeypatch):
    identity = Shift("identity", lambda images, level, generator: images, (0,) * 5, "", False)
    monkeypatch.setitem(SHIFTS, "identity", identity)
    oracle = Lookup(digits)
    records = evaluate_shifts(oracle, digits, shifts=["identity", "inversion"])
    for r in records[:6]:  # clean, then identity 1..5
        assert r["accuracy"] == 1.0 and r["confidence"] == pytest.approx(1.0)
        assert math.isnan(r["wrong_confidence"])
    for r in records[6:]:  # the record is what the model does on the shifted images
        shifted = apply_shift(digits.images, "inversion", r["severity"], seed=0)
        expected = (oracle(shifted).argmax(dim=1) == digits.labels).float().mean().item()
        assert r["accuracy"] == pytest.approx(expected)


def test_evaluate_domains_with_and_without_labels(digits):
    records = evaluate_domains(Lookup(digits), {"mnist": digits, "unlabelled": digits.images[:5]})
    assert [r["domain"] for r in records] == ["mnist", "unlabelled"]
    assert records[0]["accuracy"] == 1.0 and records[0]["n"] == len(digits)
    assert "accuracy" not in records[1] and records[1]["n"] == 5


# --- features and detectors --------------------------------------------------------------------

def test_features_are_the_body_output_in_eval_mode(digits):
    model = SmallCNN(width=2, hidden=8).train()
    out = features(model, digits, batch_size=7)
    assert out.shape == (len(digits), 8)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(out, model.features(digits.images), atol=1e-6)
    model.train()
    features(model, digits.images)
    assert model.training, "the caller's mode is restored"
    with pytest.raises(ValueError, match="features"):
        features(Uniform(), digits.images)


def test_domain_classifier_is_at_chance_without_shift_and_near_one_with_it():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(200, 5, generator=g), torch.randn(300, 5, generator=g)
    assert domain_classifier_accuracy(a, b) < 0.62
    # means 3 apart along one axis: the best possible accuracy is Phi(3 / 2) = 0.933
    bayes = 0.5 * (1 + math.erf(1.5 / math.sqrt(2)))
    shifted = b + torch.tensor([3.0, 0, 0, 0, 0])
    assert domain_classifier_accuracy(a, shifted) == pytest.approx(bayes, abs=0.04)
    with pytest.raises(ValueError, match="same number of features"):
        domain_classifier_accuracy(a, b[:, :4])
    with pytest.raises(ValueError, match="folds"):
        domain_classifier_accuracy(a[:3], b)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        domain_classifier_accuracy(a[0], b)


def test_confidence_auroc():
    sure = torch.tensor([[5.0, 0.0], [6.0, 0.0], [0.0, 7.0]])
    unsure = torch.tensor([[0.1, 0.0], [0.0, 0.2]])
    assert confidence_auroc(sure, unsure) == 1.0
    assert confidence_auroc(unsure, sure) == 0.0
    assert confidence_auroc(sure, sure) == 0.5
