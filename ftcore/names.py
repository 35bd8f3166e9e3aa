"""The names ftcore's experiments accept, in a module that imports nothing heavy.

The command line lists these in ``--help`` and checks its arguments against them before it
imports PyTorch (so ``python -m ftcore --help`` answers at once). The modules that implement
each name define their registries from the same tuples, and a test keeps them equal.
"""

#: :func:`ftcore.surgery.prepare` strategies, from training everything anew to the head only.
STRATEGIES = ("scratch", "feature_extraction", "partial", "full")
#: :data:`ftcore.optim.OPTIMIZERS`, the optimizers ``fit(optimizer=name)`` builds by name.
OPTIMIZER_NAMES = ("sgd", "adam", "adamw")
#: :data:`ftcore.shifts.SHIFTS`, the MNIST-C-style corruptions, and their severities.
SHIFT_NAMES = ("rotation", "shear", "scale", "translation", "inversion", "noise", "blur",
               "contrast", "elastic", "occlusion")
SEVERITIES = (1, 2, 3, 4, 5)
#: :data:`ftcore.remedies.REMEDIES`, the ways to train a later task of a sequence.
REMEDY_NAMES = ("naive", "freeze", "low_lr", "replay", "ewc", "l2sp")
#: Lesson 04's targets (:func:`ftcore.transfer.load_target`) and what each one is.
TARGETS = {
    "uci-digits": "UCI digits (near): other writers, 8x8 scans; the model pre-trained on 0-9",
    "mnist-5-9": "MNIST digits 5-9 (new classes), from a model pre-trained on digits 0-4",
    "fashion-mnist": "Fashion-MNIST (far): clothes; the model pre-trained on 0-9",
}
#: Epochs of lesson 03's pre-training (:class:`ftcore.pretrained.PretrainConfig`).
PRETRAIN_EPOCHS = 12
