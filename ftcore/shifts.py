"""Distribution shifts: corrupted digits, how a model copes with them, and how to detect them.

A named family of corruptions in the spirit of MNIST-C (Mu & Gilmer 2019), each with five
severity levels. Every one takes and returns float images (N, 1, H, W) in [0, 1]::

    =============  ==============================================  ========  ==================
    name           what happens to each image                      random    severity 1 ... 5
    =============  ==============================================  ========  ==================
    rotation       rotated by +-angle (the sign drawn per image)   sign      15 ... 75 degrees
    shear          sheared sideways by +-angle                     sign      10 ... 50 degrees
    scale          shrunk about the centre                         no        x0.9 ... x0.5
    translation    moved in one of 8 directions                    direction 1 ... 5 pixels
    inversion      a band of columns turned into its negative      position  20% ... 100% wide
    noise          Gaussian noise added to every pixel             noise     sigma 0.1 ... 0.5
    blur           Gaussian blur                                   no        sigma 0.6 ... 1.8 px
    contrast       blended towards the image's mean grey           no        x0.5 ... x0.1
    elastic        a smooth random warp (Simard et al. 2003)       field     0.5 ... 2.5 px RMS
    occlusion      a grey square pasted over the middle            position  6 ... 18 pixels wide
    =============  ==============================================  ========  ==================

>>> shifted = apply_shift(images, "rotation", severity=3, seed=0)   # same seed, same images

Geometry, blur, contrast, inversion and erasing are ``torchvision.transforms.v2.functional``
operations; the elastic warp is ``TF.elastic``'s computation done for a whole batch at once, and
the noise is drawn here. Random parameters come from a ``torch.Generator`` seeded by ``seed``,
never from the global random state, and the *same* draws serve every severity (the same sign,
direction, noise pattern, warp field, square centre): raising the severity only turns up the
strength, so a row of severities shows one image getting steadily worse.

Then: :func:`evaluate_shifts` (accuracy and confidence for every shift x severity),
:func:`evaluate_domains` (the same for whole data sets, e.g. MNIST -> UCI digits), and two
shift detectors: :func:`domain_classifier_accuracy` (can a classifier tell source features from
target features?) and :func:`confidence_auroc` (does the model's confidence drop on target?).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF
from torch import nn

from .checks import check_pixels
from .data import ImageSet
from .names import SEVERITIES
from .train import predict

BILINEAR = TF.InterpolationMode.BILINEAR

#: One corruption: (images (N, 1, H, W), strength at this severity, generator) -> images.
ShiftFunction = Callable[[torch.Tensor, float, torch.Generator], torch.Tensor]


@dataclass(frozen=True)
class Shift:
    """A named corruption: ``function(images, levels[severity - 1], generator)``.

    ``levels`` is the strength at severities 1..5 in ``unit`` (what the table above lists);
    ``random`` says whether the result depends on the seed.
    """

    name: str
    function: ShiftFunction
    levels: tuple[float, ...]
    unit: str
    random: bool


# --- the corruptions ---------------------------------------------------------------------------

def _grouped(images: torch.Tensor, keys: torch.Tensor,
             transform: Callable[[torch.Tensor, int], torch.Tensor]) -> torch.Tensor:
    """``transform(images[keys == k], k)`` for each distinct key ``k``: per-image parameters
    from a small set (a sign, a direction), with one batched call per value."""
    out = torch.empty_like(images)
    for key in keys.unique().tolist():
        chosen = keys == key
        out[chosen] = transform(images[chosen], key)
    return out


def _signs(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, 2, (n,), generator=generator) * 2 - 1


def rotation(images: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Rotate each image by ``+degrees`` or ``-degrees`` (sign drawn per image)."""
    return _grouped(images, _signs(len(images), generator),
                    lambda x, sign: TF.rotate(x, sign * degrees, interpolation=BILINEAR))


def shear(images: torch.Tensor, degrees: float, generator: torch.Generator) -> torch.Tensor:
    """Shear each image sideways by ``+degrees`` or ``-degrees`` (sign drawn per image)."""
    return _grouped(images, _signs(len(images), generator),
                    lambda x, sign: TF.affine(x, angle=0.0, translate=[0.0, 0.0], scale=1.0,
                                              shear=[sign * degrees, 0.0],
                                              interpolation=BILINEAR))


def scale(images: torch.Tensor, factor: float, generator: torch.Generator) -> torch.Tensor:
    """Shrink every image about its centre by ``factor`` (< 1)."""
    return TF.affine(images, angle=0.0, translate=[0.0, 0.0], scale=factor, shear=[0.0, 0.0],
                     interpolation=BILINEAR)


#: The 8 directions of :func:`translation`: (right, down) steps, clockwise from "right".
DIRECTIONS = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))


def translation(images: torch.Tensor, pixels: float, generator: torch.Generator) -> torch.Tensor:
    """Move each image ``pixels`` pixels along each axis of one of 8 directions (drawn per
    image): sideways, up or down, or diagonally (then ``pixels`` right/left *and* up/down)."""
    def move(x: torch.Tensor, direction: int) -> torch.Tensor:
        right, down = DIRECTIONS[direction]
        return TF.affine(x, angle=0.0, translate=[right * pixels, down * pixels], scale=1.0,
                         shear=[0.0, 0.0])

    return _grouped(images, torch.randint(0, 8, (len(images),), generator=generator), move)


def inversion(images: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Invert (x -> 1 - x) a vertical band covering ``fraction`` of the width, at a position
    drawn per image. ``fraction=1`` is the whole negative: dark digits on a white page."""
    width = images.shape[-1]
    band = round(fraction * width)
    left = (torch.rand(len(images), generator=generator) * (width - band)).round()
    column = torch.arange(width)
    inside = (column >= left[:, None]) & (column < left[:, None] + band)  # (N, W)
    return torch.where(inside[:, None, None, :], TF.invert(images), images)


def noise(images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Add Gaussian noise of standard deviation ``sigma`` to every pixel (then clip).

    Not ``TF.gaussian_noise``: that draws from the global random state; this draws from
    ``generator``, so the seed alone decides the noise."""
    return images + sigma * torch.randn(images.shape, generator=generator)


def blur(images: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (kernel +-3 sigma)."""
    size = 2 * math.ceil(3 * sigma) + 1
    return TF.gaussian_blur(images, kernel_size=[size, size], sigma=[sigma, sigma])


def contrast(images: torch.Tensor, factor: float, generator: torch.Generator) -> torch.Tensor:
    """Blend each image towards its own mean grey: ``mean + factor * (x - mean)``."""
    return TF.adjust_contrast(images, factor)


ELASTIC_SMOOTHNESS = 3.0  # sigma (pixels) of the Gaussian that smooths the random field


def elastic(images: torch.Tensor, rms: float, generator: torch.Generator) -> torch.Tensor:
    """Warp each image by a smooth random displacement field (Simard et al. 2003) whose
    root-mean-square length is ``rms`` pixels: uniform noise, Gaussian-smoothed, rescaled."""
    n, _, h, w = images.shape
    field = torch.rand(n, 2, h, w, generator=generator) * 2 - 1
    size = 2 * math.ceil(3 * ELASTIC_SMOOTHNESS) + 1
    field = TF.gaussian_blur(field, [size, size], [ELASTIC_SMOOTHNESS] * 2)
    field = field / field.square().sum(dim=1).mean(dim=(1, 2)).sqrt()[:, None, None, None]
    # grid_sample's coordinates run from -1 to 1 across the image: one pixel is 2 / size
    displacement = rms * field * torch.tensor([2 / w, 2 / h])[None, :, None, None]
    return warp(images, displacement.permute(0, 2, 3, 1))


def warp(images: torch.Tensor, displacement: torch.Tensor) -> torch.Tensor:
    """``TF.elastic`` for a whole batch, one field per image (``TF.elastic`` takes one field
    per call): output pixel p reads the input at p + d(p), bilinearly, zeros outside.

    Args:
        images: (N, C, H, W). displacement: (N, H, W, 2), (x, y) in grid units (the image
            spans 2), as ``TF.elastic`` expects.
    """
    n, c, h, w = images.shape
    identity = F.affine_grid(torch.eye(2, 3).expand(n, 2, 3), [n, c, h, w], align_corners=False)
    return F.grid_sample(images, identity + displacement, mode="bilinear",
                         padding_mode="zeros", align_corners=False)


OCCLUSION_GREY = 0.5


def occlusion(images: torch.Tensor, side: float, generator: torch.Generator) -> torch.Tensor:
    """Paste a grey square ``side`` pixels wide over each image, its centre drawn from the
    middle half of the image (where the digit is); the square is kept inside the image."""
    n, _, h, w = images.shape
    side = int(side)
    centre = torch.rand(n, 2, generator=generator) * torch.tensor([h / 2, w / 2]) \
        + torch.tensor([h / 4, w / 4])
    top = (centre[:, 0] - side / 2).round().clamp(0, h - side).int().tolist()
    left = (centre[:, 1] - side / 2).round().clamp(0, w - side).int().tolist()
    grey = torch.tensor(OCCLUSION_GREY)
    return torch.stack([TF.erase(image, top[i], left[i], side, side, grey)
                        for i, image in enumerate(images)])


SHIFTS: dict[str, Shift] = {s.name: s for s in (
    Shift("rotation", rotation, (15, 30, 45, 60, 75), "degrees", True),
    Shift("shear", shear, (10, 20, 30, 40, 50), "degrees", True),
    Shift("scale", scale, (0.9, 0.8, 0.7, 0.6, 0.5), "zoom factor", False),
    Shift("translation", translation, (1, 2, 3, 4, 5), "pixels", True),
    Shift("inversion", inversion, (0.2, 0.4, 0.6, 0.8, 1.0), "share of the width", True),
    Shift("noise", noise, (0.1, 0.2, 0.3, 0.4, 0.5), "sigma", True),
    Shift("blur", blur, (0.6, 0.9, 1.2, 1.5, 1.8), "sigma (pixels)", False),
    Shift("contrast", contrast, (0.5, 0.4, 0.3, 0.2, 0.1), "contrast factor", False),
    Shift("elastic", elastic, (0.5, 1.0, 1.5, 2.0, 2.5), "RMS pixels", True),
    Shift("occlusion", occlusion, (6, 9, 12, 15, 18), "pixels", True),
)}


def check_shift(name: str, severity: int) -> Shift:
    """The :class:`Shift` called ``name``; ``ValueError`` for an unknown name or a severity
    outside 1..5."""
    if name not in SHIFTS:
        raise ValueError(f"shift={name!r} is not one of {', '.join(map(repr, SHIFTS))}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
            or not SEVERITIES[0] <= severity <= SEVERITIES[-1]:
        raise ValueError(f"severity={severity!r} must be a whole number from {SEVERITIES[0]} "
                         f"(mild) to {SEVERITIES[-1]} (severe)")
    return SHIFTS[name]


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        hint = (" (add the missing axes: images.reshape(-1, 1, 28, 28))"
                if isinstance(images, torch.Tensor) and images.dim() in (2, 3) else "")
        raise ValueError(f"shifts expect a batch of grey images (N, 1, H, W), got {shape}{hint}")
    check_pixels(images, "shifts")  # floats, finite, in [0, 1]


def apply_shift(images: torch.Tensor | ImageSet, name: str, severity: int, seed: int = 0
                ) -> torch.Tensor | ImageSet:
    """Corrupt ``images`` with the shift ``name`` at ``severity`` (1 mild ... 5 severe).

    Args:
        images: float (N, 1, H, W) in [0, 1], or an :class:`ImageSet` (then an ImageSet with
            the same labels comes back, named e.g. ``"mnist + rotation 3"``).
        name: one of :data:`SHIFTS`.
        severity: 1..5.
        seed: seeds the per-image random parameters: the same seed, the same result.
    Returns:
        the corrupted images, same shape, clipped to [0, 1].
    """
    shift = check_shift(name, severity)
    if isinstance(images, ImageSet):
        return ImageSet(apply_shift(images.images, name, severity, seed), images.labels,
                        images.classes, f"{images.name} + {name} {severity}")
    _check_images(images)
    if len(images) == 0:
        return images.clone()
    generator = torch.Generator().manual_seed(seed)
    shifted = shift.function(images, shift.levels[severity - 1], generator)
    return shifted.clamp(0.0, 1.0)


def _names(shifts: Iterable[str] | None) -> list[str]:
    """The list of shift names (all of :data:`SHIFTS` for None); a lone string is refused."""
    if isinstance(shifts, str):
        raise ValueError(f"shifts={shifts!r} must be a list of shift names, e.g. "
                         f"shifts=[{shifts!r}]")
    return list(SHIFTS) if shifts is None else list(shifts)


def random_shifts(data: ImageSet, shifts: Iterable[str] | None = None,
                  severities: Iterable[int] = SEVERITIES, fraction: float = 1.0,
                  seed: int = 0) -> ImageSet:
    """A copy of ``data`` for training with augmentation: each image, with probability
    ``fraction``, gets one shift from ``shifts`` at one severity from ``severities``, all drawn
    per image; the others stay clean.

    Labels, classes and order are kept. Images that drew the same (shift, severity) are
    corrupted in one batched call.
    """
    shifts, severities = _names(shifts), list(severities)
    if not shifts or not severities:
        raise ValueError("random_shifts needs at least one shift and one severity")
    for name in shifts:
        for severity in severities:
            check_shift(name, severity)
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction={fraction!r} must be in [0, 1]: the share of images shifted")
    generator = torch.Generator().manual_seed(seed)
    n = len(data)
    shifted = torch.rand(n, generator=generator) < fraction
    which = torch.randint(0, len(shifts), (n,), generator=generator)
    level = torch.randint(0, len(severities), (n,), generator=generator)
    images = data.images.clone()
    for i, name in enumerate(shifts):
        for j, severity in enumerate(severities):
            chosen = shifted & (which == i) & (level == j)
            if chosen.any():
                images[chosen] = apply_shift(data.images[chosen], name, severity,
                                             seed=seed + 1000 * i + j)
    return ImageSet(images, data.labels, data.classes,
                    f"{data.name} + random {', '.join(shifts)}")


# --- measuring the damage ----------------------------------------------------------------------

def _score(model: nn.Module, images: torch.Tensor, labels: torch.Tensor | None,
           device=None) -> dict:
    """n, accuracy, mean confidence (top softmax probability), and the mean confidence of the
    wrong predictions (nan if there are none)."""
    probabilities = predict(model, images, device=device).softmax(dim=1)
    confidence, predicted = probabilities.max(dim=1)
    record = {"n": len(images), "confidence": confidence.mean().item()}
    if labels is not None:
        wrong = predicted != labels
        record["accuracy"] = 1.0 - wrong.float().mean().item()
        record["wrong_confidence"] = (confidence[wrong].mean().item() if wrong.any()
                                      else float("nan"))
    return record


def evaluate_shifts(model: nn.Module, data: ImageSet, shifts: Iterable[str] | None = None,
                    severities: Iterable[int] = SEVERITIES, seed: int = 0,
                    device=None) -> list[dict]:
    """Accuracy and confidence of ``model`` on ``data`` under every shift x severity.

    Returns plain records, the clean data first::

        {"shift": "none", "severity": 0, "n", "accuracy", "confidence", "wrong_confidence"}
        {"shift": "rotation", "severity": 1, ...}, ..., {"shift": "occlusion", "severity": 5, ...}

    ``confidence`` is the mean top softmax probability; ``wrong_confidence`` the same over the
    wrong predictions only. ``shifts`` defaults to all of :data:`SHIFTS`. ``device``: where the
    model runs (default: the best available).
    """
    shifts = _names(shifts)
    severities = list(severities)
    for name in shifts:
        for severity in severities:
            check_shift(name, severity)  # fail before the (slow) loop, not half-way through
    records = [{"shift": "none", "severity": 0,
                **_score(model, data.images, data.labels, device)}]
    for name in shifts:
        for severity in severities:
            shifted = apply_shift(data.images, name, severity, seed)
            records.append({"shift": name, "severity": severity,
                            **_score(model, shifted, data.labels, device)})
    return records


def evaluate_domains(model: nn.Module, domains: Mapping[str, ImageSet | torch.Tensor]
                     ) -> list[dict]:
    """Accuracy and confidence of ``model`` on whole data sets, e.g. the source domain and a
    target domain: ``evaluate_domains(model, {"mnist": mnist.test, "uci-digits": uci.test})``.

    A value may be a bare image tensor (N, 1, 28, 28) for data without digit labels (e.g.
    Fashion-MNIST): its record then has no ``accuracy``. Returns one record per domain:
    ``{"domain", "n", "accuracy", "confidence", "wrong_confidence"}``.
    """
    records = []
    for name, data in domains.items():
        if isinstance(data, ImageSet):
            records.append({"domain": name, **_score(model, data.images, data.labels)})
        else:
            _check_images(data)
            records.append({"domain": name, **_score(model, data, None)})
    return records


# --- seeing and detecting the shift ------------------------------------------------------------

@torch.no_grad()
def features(model: nn.Module, images: torch.Tensor | ImageSet, batch_size: int = 256
             ) -> torch.Tensor:
    """What the body hands to the head: ``model.features(images)``, (N, hidden) on the CPU,
    computed in evaluation mode (dropout off, BatchNorm's running statistics)."""
    if isinstance(images, ImageSet):
        images = images.images
    body = getattr(model, "features", None)
    if not isinstance(body, nn.Module):
        raise ValueError(f"{type(model).__name__} has no `features` module (the body before "
                         "the head), which ftcore's models name `features`")
    device = next(iter([*model.parameters(), *model.buffers()]), torch.empty(0)).device
    return predict(body, images, batch_size, device=device).flatten(1)  # the body, where it is


def _as_matrix(x, name: str) -> np.ndarray:
    x = np.asarray(x.detach().cpu() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name} must be a matrix (N, D) of features, got shape {x.shape}")
    return x


def domain_classifier_accuracy(source, target, folds: int = 5, seed: int = 0) -> float:
    """How well a linear classifier tells ``source`` rows from ``target`` rows (a shift
    detector; Lipton et al. 2018, Rabanser et al. 2019).

    The larger set is subsampled to the size of the smaller, so chance is 0.5: about 0.5 means
    "no detectable shift", near 1.0 a glaring one. Logistic regression on standardised
    features, ``folds``-fold stratified cross-validation (scikit-learn); returns the mean
    held-out accuracy.

    Args:
        source, target: features (N_s, D) and (N_t, D), tensors or arrays.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    source, target = _as_matrix(source, "source"), _as_matrix(target, "target")
    if source.shape[1] != target.shape[1]:
        raise ValueError(f"source and target must have the same number of features, got "
                         f"{source.shape[1]} and {target.shape[1]}")
    n = min(len(source), len(target))
    if n < folds:
        raise ValueError(f"need at least folds={folds} examples in each set, got {n}")
    rng = np.random.default_rng(seed)
    source = source[rng.permutation(len(source))[:n]]
    target = target[rng.permutation(len(target))[:n]]
    x = np.concatenate([source, target])
    y = np.concatenate([np.zeros(n, dtype=int), np.ones(n, dtype=int)])
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return float(cross_val_score(classifier, x, y, cv=splits).mean())


def confidence_auroc(source_logits: torch.Tensor, target_logits: torch.Tensor) -> float:
    """How well low confidence flags target inputs (Hendrycks & Gimpel 2017): the area under
    the ROC curve of the score ``1 - max softmax`` for telling target (positive) from source.

    0.5: the model is as confident on target as on source (the test sees nothing); 1.0: every
    target input gets a lower confidence than every source input. Logits: (N, C).
    """
    from sklearn.metrics import roc_auc_score

    scores = [1 - logits.softmax(dim=1).max(dim=1).values for logits in
              (source_logits, target_logits)]
    truth = np.concatenate([np.zeros(len(scores[0])), np.ones(len(scores[1]))])
    return float(roc_auc_score(truth, torch.cat(scores).numpy()))
