"""Lesson 08's exercise checks: a correct answer written another way passes, and the mistakes a
student would plausibly make fail with a message that names the mistake."""

from __future__ import annotations

import numpy as np
import torch
from helpers import fails, passes

from ftcore.exercises.lesson08 import SALT_AND_PEPPER_LEVELS as LEVELS

# --- 07.1: salt-and-pepper noise ---------------------------------------------------------------

def salt_and_pepper_one_draw(images, severity, seed=0):
    """Correct, differently: one uniform number per pixel decides both the hit and its colour."""
    u = torch.rand(images.shape, generator=torch.Generator().manual_seed(seed))
    level = LEVELS[severity - 1]
    out = images.clone()
    out[u < level] = 0.0
    out[u < level / 2] = 1.0
    return out


def test_salt_and_pepper_correct_answer_passes():
    passes("08.1", salt_and_pepper_one_draw)


def test_salt_and_pepper_global_random_state_fails():
    def answer(images, severity, seed=0):
        torch.manual_seed(seed)
        hit = torch.rand(images.shape) < LEVELS[severity - 1]
        return torch.where(hit, (torch.rand(images.shape) < 0.5).float(), images)

    fails("08.1", answer, "global random state")


def test_salt_and_pepper_in_place_fails():
    def answer(images, severity, seed=0):
        generator = torch.Generator().manual_seed(seed)
        hit = torch.rand(images.shape, generator=generator) < LEVELS[severity - 1]
        salt = torch.rand(images.shape, generator=generator) < 0.5
        images[hit] = salt[hit].float()
        return images

    fails("08.1", answer, "in place")


def test_salt_and_pepper_one_mask_for_the_batch_fails():
    def answer(images, severity, seed=0):
        generator = torch.Generator().manual_seed(seed)
        u = torch.rand(images.shape[-2:], generator=generator)  # (H, W): broadcast to all
        return torch.where(u < LEVELS[severity - 1], (u < LEVELS[severity - 1] / 2).float(),
                           images)

    fails("08.1", answer, "same pattern of replaced pixels")


def test_salt_and_pepper_salt_only_fails():
    def answer(images, severity, seed=0):
        generator = torch.Generator().manual_seed(seed)
        hit = torch.rand(images.shape, generator=generator) < LEVELS[severity - 1]
        return images.masked_fill(hit, 1.0)

    fails("08.1", answer, "equally likely")


def test_salt_and_pepper_new_draws_per_severity_fail():
    def answer(images, severity, seed=0):
        generator = torch.Generator().manual_seed(seed + severity)  # other pixels each severity
        hit = torch.rand(images.shape, generator=generator) < LEVELS[severity - 1]
        salt = torch.rand(images.shape, generator=generator) < 0.5
        return torch.where(hit, salt.float(), images)

    fails("08.1", answer, "only add damage")


# --- 07.2: the confidence detector's AUROC ------------------------------------------------------

def auroc_by_pairs(source_logits, target_logits):
    """Correct, differently: count (target, source) pairs, ties half."""
    unsure_s = 1 - source_logits.softmax(dim=1).amax(dim=1)
    unsure_t = 1 - target_logits.softmax(dim=1).amax(dim=1)
    higher = (unsure_t[:, None] > unsure_s[None, :]).float().mean()
    tied = (unsure_t[:, None] == unsure_s[None, :]).float().mean()
    return (higher + tied / 2).item()


def test_auroc_correct_answer_passes():
    passes("08.2", auroc_by_pairs)


def test_auroc_upside_down_fails():
    def answer(source_logits, target_logits):
        return 1 - auroc_by_pairs(source_logits, target_logits)

    fails("08.2", answer, "upside down")


def test_auroc_from_the_largest_logit_fails():
    def answer(source_logits, target_logits):
        from sklearn.metrics import roc_auc_score

        scores = -torch.cat([source_logits, target_logits]).max(dim=1).values
        labels = np.r_[np.zeros(len(source_logits)), np.ones(len(target_logits))]
        return roc_auc_score(labels, scores.numpy())

    fails("08.2", answer, "largest raw logit")


def test_auroc_ties_not_counted_fails():
    def answer(source_logits, target_logits):
        unsure_s, unsure_t = (1 - x.softmax(dim=1).max(dim=1).values
                              for x in (source_logits, target_logits))
        return (unsure_t[:, None] > unsure_s[None, :]).float().mean().item()

    fails("08.2", answer, "counts half")


# --- 07.3: a domain classifier ------------------------------------------------------------------

def _stack(source, target):
    x = np.concatenate([source, target])
    return x, np.r_[np.zeros(len(source)), np.ones(len(target))]


def domain_classifier_cv(source, target, seed=0):
    """Correct, differently: balanced by truncation, 5-fold cross-validated."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    n = min(len(source), len(target))
    x, y = _stack(source[:n], target[:n])
    return cross_val_score(LogisticRegression(max_iter=500), x, y, cv=5).mean()


def test_domain_classifier_correct_answer_passes():
    passes("08.3", domain_classifier_cv)


def test_domain_classifier_scored_on_its_training_data_fails():
    def answer(source, target, seed=0):
        from sklearn.linear_model import LogisticRegression

        n = min(len(source), len(target))
        x, y = _stack(source[:n], target[:n])
        return LogisticRegression(max_iter=500).fit(x, y).score(x, y)

    fails("08.3", answer, "trained on")


def test_domain_classifier_unbalanced_fails():
    def answer(source, target, seed=0):
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import cross_val_score

        x, y = _stack(source, target)
        return cross_val_score(LogisticRegression(max_iter=500), x, y, cv=5).mean()

    fails("08.3", answer, "always answering 'source'")


def test_domain_classifier_that_sees_nothing_fails():
    fails("08.3", lambda source, target, seed=0: 0.5, "glaring shift")
