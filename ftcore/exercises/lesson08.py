"""Checks for lesson 08's exercises: a shift of your own, and two shift detectors."""

from __future__ import annotations

import numpy as np
import torch

from .checks import Exercise, expect

# --- 07.1: salt-and-pepper noise with a severity knob ----------------------------------------

#: Share of pixels salt-and-pepper noise replaces at severities 1..5 (the lesson states these).
SALT_AND_PEPPER_LEVELS = (0.02, 0.05, 0.1, 0.2, 0.3)


def _check_salt_and_pepper(salt_and_pepper) -> None:
    generator = torch.Generator().manual_seed(7)
    # pixels strictly inside (0, 1): a replaced pixel always changes, so it can be counted
    images = 0.05 + 0.9 * torch.rand(200, 1, 28, 28, generator=generator)
    original = images.clone()
    rng_state = torch.get_rng_state()
    out = salt_and_pepper(images, 3, seed=0)
    expect(torch.equal(torch.get_rng_state(), rng_state),
           "your function changed torch's global random state (torch.manual_seed, or torch.rand "
           "without a generator): draw every random number from a torch.Generator seeded with "
           "`seed`, as ftcore.shifts does, so the shift never disturbs the caller's randomness")
    expect(torch.equal(images, original),
           "your function changed its input images in place: work on a copy (e.g. "
           "torch.where or images.clone()), the caller still needs the clean images")
    expect(isinstance(out, torch.Tensor) and out.shape == images.shape,
           f"return a tensor of the input's shape {tuple(images.shape)}, got "
           f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}")
    expect(out.is_floating_point(), f"return float pixels like the input, got {out.dtype}")
    changed = out != images
    expect(((out[changed] == 0) | (out[changed] == 1)).all(),
           "some pixels changed to values other than 0 or 1: a replaced pixel becomes pure "
           "black (0, pepper) or pure white (1, salt), the others keep their value exactly")
    expect(torch.equal(out, salt_and_pepper(images, 3, seed=0)),
           "two calls with the same seed gave different images: the seed alone must decide "
           "the result (a torch.Generator seeded with `seed`)")
    expect(not torch.equal(out, salt_and_pepper(images, 3, seed=1)),
           "seeds 0 and 1 gave the same images: the random draws must come from `seed`")

    hits = [salt_and_pepper(images, severity, seed=0) != images
            for severity in range(1, len(SALT_AND_PEPPER_LEVELS) + 1)]
    expect(any(not torch.equal(hits[-1][0], other) for other in hits[-1][1:]),
           "every image got the same pattern of replaced pixels: draw the random numbers for "
           "the whole batch, one per pixel of every image (shape (N, 1, H, W))")
    levels = zip(SALT_AND_PEPPER_LEVELS, hits, strict=True)
    for severity, (level, hit) in enumerate(levels, start=1):
        share = hit.float().mean().item()
        expect(abs(share - level) < 0.01,
               f"at severity {severity} your function replaced a share {share:.3f} of the "
               f"pixels; LEVELS says {level}. Look at how the severity picks its level "
               f"(severity 1 is LEVELS[0])")
        salt = (salt_and_pepper(images, severity, seed=0)[hit] == 1).float().mean().item()
        expect(abs(salt - 0.5) < 0.05,
               f"at severity {severity}, {salt:.0%} of the replaced pixels are salt (white): "
               "salt and pepper should be equally likely")
    for severity, (lower, higher) in enumerate(zip(hits, hits[1:], strict=False), start=1):
        expect(not (lower & ~higher).any(),
               f"with the same seed, some pixels replaced at severity {severity} are left "
               f"clean at severity {severity + 1}: raising the severity should only add damage "
               f"to the same image. Draw the same random numbers whatever the severity, and let "
               f"the severity decide only how many of them count as hits")


# --- 07.2: the confidence detector's AUROC ---------------------------------------------------

def _confidence_logits(n: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    """Random logits (n, 10) of the given scale, each row moved by its own constant (which
    changes the largest logit but not the softmax)."""
    logits = scale * torch.randn(n, 10, generator=generator)
    return logits + 5 * torch.randn(n, 1, generator=generator)


def _auroc(scores_source: torch.Tensor, scores_target: torch.Tensor, ties: float = 0.5) -> float:
    """P(target score > source score) + ties * P(equal), over all pairs."""
    higher = (scores_target[:, None] > scores_source[None, :]).double().mean()
    equal = (scores_target[:, None] == scores_source[None, :]).double().mean()
    return (higher + ties * equal).item()


#: Two AUROCs this close agree (a few (target, source) pairs of nearly equal confidence may be
#: ordered differently by another, equally correct, way of computing the softmax).
TOLERANCE = 2e-4


def _check_confidence_auroc(detector_auroc) -> None:
    from sklearn.metrics import roc_auc_score

    generator = torch.Generator().manual_seed(3)
    source = _confidence_logits(300, 3.0, generator)   # large logits: confident
    target = _confidence_logits(200, 1.0, generator)   # small logits: less sure
    source[:60] = target[:50] = 0.0                    # all classes equal: exact ties at 0.1
    unsure = [1 - logits.softmax(dim=1).max(dim=1).values for logits in (source, target)]
    truth = np.r_[np.zeros(len(source)), np.ones(len(target))]
    expected = roc_auc_score(truth, torch.cat(unsure).double().numpy())

    result = detector_auroc(source.clone(), target.clone())
    expect(np.ndim(result) == 0, "return a single number (the area under the ROC curve), got "
                                 f"{type(result).__name__} of shape {np.shape(result)}")
    result = float(result)
    expect(0 <= result <= 1, f"an AUROC lies between 0 and 1, yours is {result:.3f}")
    if abs(result - expected) < TOLERANCE:
        return
    largest_logit = [-logits.max(dim=1).values for logits in (source, target)]
    expect(abs(result - (1 - expected)) > TOLERANCE,
           "your detector is upside down: on logits where the target inputs are the less "
           "confident ones it scores below 0.5. The target inputs are the positives, and a "
           "*low* confidence should raise the alarm")
    expect(abs(result - _auroc(*largest_logit)) > TOLERANCE,
           "your AUROC matches a score made from the largest raw logit: adding a constant to a "
           "row of logits changes that, but not the prediction nor its probabilities. Score by "
           "the softmax probability of the predicted class")
    expect(abs(result - _auroc(*unsure, ties=0.0)) > TOLERANCE
           and abs(result - _auroc(*unsure, ties=1.0)) > TOLERANCE,
           "your AUROC is off exactly where a source and a target input get the same "
           "confidence: a tie is a coin flip for the detector, it counts half")
    expect(False, f"your AUROC is {result:.4f} on these test logits, which is not what "
                  "1 - max softmax gives; check the score (1 - max softmax probability) and "
                  "that target inputs are the positive class")


# --- 07.3: a domain classifier ---------------------------------------------------------------

def _check_domain_classifier(domain_classifier) -> None:
    rng = np.random.default_rng(11)

    def score(source: np.ndarray, target: np.ndarray) -> float:
        result = domain_classifier(source, target, seed=0)
        expect(np.ndim(result) == 0, "return a single number, the held-out accuracy, got "
                                     f"{type(result).__name__} of shape {np.shape(result)}")
        result = float(result)
        expect(0 <= result <= 1, f"an accuracy lies between 0 and 1, yours is {result:.3f}")
        return result

    shifted = score(rng.normal(size=(300, 16)), rng.normal(size=(300, 16)) + 0.5)
    expect(shifted > 0.7,
           f"a glaring shift (every feature's mean moved by half a standard deviation) gets "
           f"only {shifted:.2f}: label source 0 and target 1, train the classifier on both sets "
           f"together and return the accuracy of its predictions")
    alike = score(rng.normal(size=(500, 400)), rng.normal(size=(500, 400)))
    expect(abs(alike - 0.5) < 0.15,
           f"with no shift at all (both sets drawn from the same distribution) your detector "
           f"scores {alike:.2f}, not chance (0.5). Is it scored on examples it was trained on? "
           f"With 400 features a classifier can memorise 1,000 examples; only accuracy on "
           f"examples it has not seen says whether the domains differ")
    lopsided = score(rng.normal(size=(8000, 8)), rng.normal(size=(400, 8)))
    expect(lopsided < 0.7,
           f"with no shift but 20 times more source than target examples your detector scores "
           f"{lopsided:.2f}: it can win by always answering 'source'. Make chance 0.5 whatever "
           f"the sizes of the two sets")


EXERCISES: list[Exercise] = [
    Exercise(
        id="08.1", title="Salt-and-pepper noise with a severity knob",
        hint="seed a torch.Generator with `seed` and draw the random numbers for the whole batch "
             "at once; how can one set of draws serve every severity, so that damage only grows "
             "with it?",
        test=_check_salt_and_pepper),
    Exercise(
        id="08.2", title="The AUROC of the confidence detector",
        hint="the detector's score is how unsure the model is; which set are the positives? "
             "scikit-learn's metrics compute the area for you",
        test=_check_confidence_auroc),
    Exercise(
        id="08.3", title="A domain classifier",
        hint="Chance must be 0.5, so use as many source as target rows; and judge the classifier "
             "on rows it was not trained on (sklearn's train_test_split or cross_val_score).",
        test=_check_domain_classifier),
]
