"""Tests for continual learning: ftcore.continual (tasks, scenarios, metrics, the runner),
ftcore.remedies (replay buffer, EWC, the remedies) and the MLP and plots they use.

Metrics are checked on accuracy matrices computed by hand; scenarios and runs use tiny
synthetic image sets (a few images per class) so the whole file runs in seconds.
"""

import copy

import pytest
import torch

from ftcore.continual import (
    OutputSlice,
    SequenceResult,
    Task,
    average_accuracy,
    backward_transfer,
    compare_remedies,
    forgetting,
    joint_training,
    mnist_to_fashion,
    mnist_to_uci,
    output_size,
    permute_pixels,
    permuted_mnist,
    pixel_permutations,
    plasticity,
    run_sequence,
    split_mnist,
    task_accuracies,
    task_sequence,
)
from ftcore.data import ImageSet, Splits
from ftcore.models import MLP
from ftcore.plots import plot_accuracy_matrices, plot_task_curves
from ftcore.remedies import (
    EWC,
    L2SP,
    REMEDIES,
    FreezeBody,
    Replay,
    ReplayBuffer,
    diagonal_fisher,
    ewc_penalty,
    make_remedy,
    snapshot,
)
from ftcore.train import evaluate

DIGITS = tuple(str(d) for d in range(10))


def toy_images(per_class=6, num_classes=10, seed=0, name="toy"):
    """Random images whose class is written into a bright pixel block, so an MLP learns it."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    images = torch.rand(len(labels), 1, 28, 28, generator=g) * 0.3
    for i, y in enumerate(labels.tolist()):
        images[i, 0, 2 * y:2 * y + 2, :4] = 1.0
    classes = DIGITS if num_classes == 10 else tuple(f"c{k}" for k in range(num_classes))
    return ImageSet(images, labels, classes, name)


def toy_splits(per_class=6, seed=0, name="toy"):
    train = toy_images(per_class, seed=seed, name=name)
    test = toy_images(max(2, per_class // 2), seed=seed + 100, name=name)
    return Splits(train, test, test)


def small_mlp(num_classes=10, seed=0):
    with torch.random.fork_rng(devices=[]):  # leave the global generator alone
        torch.manual_seed(seed)
        return MLP(num_classes, hidden=(16,))


# --- metrics on hand-computed accuracy matrices -----------------------------------------------

R3 = [[0.9, 0.1, 0.0],
      [0.6, 0.8, 0.2],
      [0.5, 0.7, 0.9]]


def test_average_accuracy_is_the_mean_of_the_last_row():
    assert average_accuracy(R3) == pytest.approx((0.5 + 0.7 + 0.9) / 3)


def test_forgetting_is_best_earlier_accuracy_minus_final_averaged_over_old_tasks():
    # task 0: best 0.9, final 0.5 -> 0.4; task 1: best 0.8, final 0.7 -> 0.1; last task excluded
    assert forgetting(R3) == pytest.approx((0.4 + 0.1) / 2)


def test_forgetting_uses_the_best_earlier_row_not_the_diagonal():
    R = [[0.5, 0.0, 0.0],
         [0.8, 0.9, 0.0],   # task 0 improved after task 1: its best is 0.8, not R[0, 0]
         [0.6, 0.3, 0.95]]
    assert forgetting(R) == pytest.approx(((0.8 - 0.6) + (0.9 - 0.3)) / 2)
    assert backward_transfer(R) == pytest.approx(((0.6 - 0.5) + (0.3 - 0.9)) / 2)


def test_backward_transfer_compares_final_with_just_learned_accuracy():
    assert backward_transfer(R3) == pytest.approx(((0.5 - 0.9) + (0.7 - 0.8)) / 2)
    improved = [[0.5, 0.0], [0.7, 0.9]]  # learning task 1 helped task 0
    assert backward_transfer(improved) == pytest.approx(0.2)
    assert forgetting(improved) == pytest.approx(-0.2)


def test_plasticity_is_the_mean_of_the_diagonal_after_the_learned_tasks():
    assert plasticity(R3) == pytest.approx((0.9 + 0.8 + 0.9) / 3)
    assert plasticity(R3, learned=1) == pytest.approx((0.8 + 0.9) / 2)
    with pytest.raises(ValueError, match="learned=3"):
        plasticity(R3, learned=3)


def test_metrics_accept_tensors_and_reject_non_square_or_too_small_matrices():
    assert average_accuracy(torch.tensor(R3)) == pytest.approx(average_accuracy(R3))
    with pytest.raises(ValueError, match="square"):
        average_accuracy([[0.5, 0.5]])
    with pytest.raises(ValueError, match="T >= 2"):
        forgetting([[0.9]])  # forgetting needs an old task
    with pytest.raises(ValueError, match="square"):
        backward_transfer([])


# --- the replay buffer ------------------------------------------------------------------------

def test_replay_buffer_keeps_at_most_its_share_per_class():
    buffer = ReplayBuffer(capacity=20, num_classes=4, seed=0)
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 3)  # class 3 never offered
    buffer.add(torch.rand(len(labels), 1, 28, 28), labels)
    assert buffer.per_class == 5
    assert buffer.class_counts().tolist() == [5, 5, 3, 0]
    for _ in range(3):  # more of everything: never more than 5 per class, never over capacity
        buffer.add(torch.rand(40, 1, 28, 28), torch.arange(4).repeat(10))
        assert buffer.class_counts().max() <= 5
        assert len(buffer) <= buffer.capacity
    assert buffer.class_counts().tolist() == [5, 5, 5, 5]  # class-balanced once all are seen


def test_replay_buffer_labels_match_the_images_it_holds():
    buffer = ReplayBuffer(capacity=30, num_classes=3, seed=1)
    labels = torch.arange(3).repeat(20)
    images = labels.float().div(10).view(-1, 1, 1, 1).expand(-1, 1, 28, 28).clone()
    buffer.add(images, labels)
    assert buffer.images.shape == (len(buffer), 1, 28, 28)
    assert torch.equal(buffer.images[:, 0, 0, 0], buffer.labels.float() / 10)


def test_replay_buffer_samples_old_and_new_examples_alike():
    """Reservoir sampling: after offering 1,000 examples of one class, the 50 kept ones are a
    uniform sample, so their mean position is near the middle (expected 500, sd ~41)."""
    buffer = ReplayBuffer(capacity=50, num_classes=1, seed=0)
    positions = torch.arange(1000).float()
    for chunk in positions.split(100):  # ten batches, oldest first
        buffer.add(chunk.view(-1, 1, 1, 1).expand(-1, 1, 28, 28).clone(),
                   torch.zeros(len(chunk), dtype=torch.int64))
    kept = buffer.images[:, 0, 0, 0]
    assert len(kept) == 50 and len(kept.unique()) == 50
    assert 250 < kept.mean() < 750


def test_replay_buffer_is_reproducible_from_its_seed():
    def filled(seed):
        buffer = ReplayBuffer(capacity=10, num_classes=2, seed=seed)
        labels = torch.arange(2).repeat(50)
        buffer.add(torch.arange(100).float().view(-1, 1, 1, 1).expand(-1, 1, 28, 28), labels)
        return buffer.images[:, 0, 0, 0]

    assert torch.equal(filled(3), filled(3))
    assert not torch.equal(filled(3), filled(4))


def test_replay_buffer_rejects_a_capacity_below_the_number_of_classes():
    with pytest.raises(ValueError, match=r"capacity=5 is smaller than num_classes=10"):
        ReplayBuffer(capacity=5, num_classes=10)
    with pytest.raises(ValueError, match="capacity=0"):
        ReplayBuffer(capacity=0, num_classes=1)
    buffer = ReplayBuffer(capacity=10, num_classes=2)
    with pytest.raises(ValueError, match=r"labels must lie in 0\.\.1"):
        buffer.add(torch.rand(1, 1, 28, 28), torch.tensor([2]))
    with pytest.raises(ValueError, match="2 images but 1 labels"):
        buffer.add(torch.rand(2, 1, 28, 28), torch.tensor([0]))


def test_an_empty_replay_buffer_holds_nothing():
    buffer = ReplayBuffer(capacity=10, num_classes=2)
    assert len(buffer) == 0 and buffer.images.shape == (0, 1, 28, 28) and len(buffer.labels) == 0


# --- EWC: Fisher and penalty ------------------------------------------------------------------

def test_fisher_is_non_negative_and_shaped_like_the_trainable_parameters():
    model = small_mlp()
    model.features.fc1.linear.bias.requires_grad_(False)
    fisher = diagonal_fisher(model, toy_images(), n_samples=20)
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert fisher.keys() == trainable.keys()
    for name, f in fisher.items():
        assert f.shape == trainable[name].shape
        assert (f >= 0).all()
    assert sum(f.sum() for f in fisher.values()) > 0


def test_fisher_is_zero_for_output_units_the_task_does_not_use():
    model = small_mlp()
    fisher = diagonal_fisher(model, toy_images(), outputs=(0, 1), n_samples=20)
    assert (fisher["head.weight"][2:] == 0).all() and (fisher["head.bias"][2:] == 0).all()
    assert (fisher["head.weight"][:2] > 0).any()


def test_fisher_is_reproducible_and_leaves_the_model_mode_alone():
    model = small_mlp().train()
    a = diagonal_fisher(model, toy_images(), n_samples=10, seed=1)
    b = diagonal_fisher(model, toy_images(), n_samples=10, seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert model.training


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_quadratically_with_distance():
    model = small_mlp()
    anchor = snapshot(model)
    fisher = diagonal_fisher(model, toy_images(), n_samples=20)
    assert ewc_penalty(model, fisher, anchor, lam=10.0).item() == 0.0

    direction = {n: torch.randn_like(p) for n, p in model.named_parameters()}
    values = []
    for step in (1e-2, 2e-2):
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(anchor[name] + step * direction[name])
        values.append(ewc_penalty(model, fisher, anchor, lam=10.0).item())
    assert 0 < values[0] < values[1]
    assert values[1] == pytest.approx(4 * values[0], rel=1e-4)  # twice as far: four times


def test_ewc_penalty_with_unit_fisher_is_half_lambda_times_squared_distance():
    model = small_mlp()
    anchor = snapshot(model)
    with torch.no_grad():
        model.head.bias.add_(0.5)
    ones = {n: torch.ones_like(p) for n, p in model.named_parameters()}
    expected = 3.0 / 2 * 0.5 ** 2 * model.head.bias.numel()
    assert ewc_penalty(model, ones, anchor, lam=3.0).item() == pytest.approx(expected)


def test_ewc_penalty_has_a_gradient_pulling_towards_the_anchor():
    model = small_mlp()
    anchor = snapshot(model)
    with torch.no_grad():
        model.head.bias.add_(1.0)
    ones = {"head.bias": torch.ones_like(model.head.bias)}
    ewc_penalty(model, ones, anchor, lam=2.0).backward()
    assert torch.allclose(model.head.bias.grad, torch.full_like(model.head.bias, 2.0))


def test_diagonal_fisher_reports_a_diverged_model():
    model = small_mlp()
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    with pytest.raises(ValueError, match="diverged"):
        diagonal_fisher(model, toy_images(), n_samples=2)


# --- scenario builders ------------------------------------------------------------------------

def test_split_mnist_class_incremental_shares_one_head():
    tasks = split_mnist(toy_splits(), "class")
    assert len(tasks) == 5 and output_size(tasks) == 10
    for k, task in enumerate(tasks):
        assert task.outputs == tuple(range(10))
        assert set(task.train.labels.tolist()) == set(task.test.labels.tolist()) == {2 * k,
                                                                                     2 * k + 1}


def test_split_mnist_task_incremental_gives_each_task_its_own_units():
    tasks = split_mnist(toy_splits(), "task")
    assert [t.outputs for t in tasks] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert [t.name for t in tasks] == ["0/1", "2/3", "4/5", "6/7", "8/9"]
    for task in tasks:
        assert set(task.train.labels.tolist()) == {0, 1}
        assert task.train.classes == tuple(str(d) for d in task.outputs)


def test_split_mnist_rejects_an_unknown_scenario():
    with pytest.raises(ValueError, match="scenario='domain' is not one of 'task', 'class'"):
        split_mnist(toy_splits(), "domain")


def test_pixel_permutations_are_fixed_bijections_starting_with_the_identity():
    perms = pixel_permutations(4, seed=7)
    assert perms.shape == (4, 784)
    assert torch.equal(perms[0], torch.arange(784))
    for p in perms:
        assert torch.equal(p.sort().values, torch.arange(784))
    assert torch.equal(perms, pixel_permutations(4, seed=7))
    assert not torch.equal(perms[1:], pixel_permutations(4, seed=8)[1:])
    assert not torch.equal(perms[1], perms[2])


def test_permuted_mnist_moves_pixels_and_keeps_labels():
    data = toy_splits()
    tasks = permuted_mnist(data, n_tasks=3, seed=0)
    perms = pixel_permutations(3, seed=0)
    assert len(tasks) == 3 and all(t.outputs == tuple(range(10)) for t in tasks)
    assert torch.equal(tasks[0].train.images, data.train.images)
    for task, perm in zip(tasks, perms, strict=True):
        assert torch.equal(task.train.labels, data.train.labels)
        flat = task.train.images.flatten(1)
        assert torch.equal(flat, data.train.images.flatten(1)[:, perm])
        assert torch.equal(flat.sort(dim=1).values, data.train.images.flatten(1).sort(dim=1).values)


def test_permute_pixels_inverts_with_the_inverse_permutation():
    data = toy_images()
    perm = pixel_permutations(2, seed=1)[1]
    there = permute_pixels(data, perm, "there")
    back = permute_pixels(there, perm.argsort(), "back")
    assert torch.equal(back.images, data.images)


def test_task_sequences_share_or_separate_the_head():
    a, b = toy_splits(name="a"), toy_splits(seed=1, name="b")
    shared = mnist_to_uci(a, b)
    separate = mnist_to_fashion(a, b)
    assert [t.name for t in shared] == ["MNIST", "UCI digits"]
    assert [t.outputs for t in shared] == [tuple(range(10))] * 2
    assert [t.outputs for t in separate] == [tuple(range(10)), tuple(range(10, 20))]
    assert output_size(separate) == 20
    with pytest.raises(ValueError, match="heads='both' is not one of 'shared', 'separate'"):
        task_sequence({"a": a}, heads="both")


def test_task_checks_its_outputs_against_its_classes():
    data = toy_images()
    with pytest.raises(ValueError, match="10 classes but outputs=.* names 2 units"):
        Task("bad", data, data, (0, 1))
    with pytest.raises(ValueError, match="distinct"):
        Task("bad", data, data, (0,) * 10)


# --- running a sequence -----------------------------------------------------------------------

def two_tasks(heads="separate"):
    return task_sequence({"a": toy_splits(name="a"), "b": toy_splits(seed=5, name="b")},
                         heads=heads)


def test_run_sequence_fills_the_accuracy_matrix_and_the_curve():
    tasks = split_mnist(toy_splits(), "task")[:3]
    result = run_sequence(small_mlp(), tasks, "naive", epochs=2, batch_size=8, eval_every=2,
                          lr=0.1)
    assert isinstance(result, SequenceResult)
    assert result.tasks == ["0/1", "2/3", "4/5"]
    assert len(result.accuracy) == 3 and all(len(row) == 3 for row in result.accuracy)
    assert all(0 <= a <= 1 for row in result.accuracy for a in row)
    steps_per_task = 2 * -(-len(tasks[0].train) // 8)
    for i in range(3):
        steps = [r["step"] for r in result.curve if r["task"] == i]
        assert steps[0] == 0 and steps[-1] == steps_per_task
    assert result.curve[-1]["accuracy"] == result.accuracy[-1]  # the last check is the last row
    assert result.summary()["average_accuracy"] == pytest.approx(
        average_accuracy(result.accuracy))


def test_run_sequence_row_i_matches_evaluating_each_task_after_task_i():
    tasks = two_tasks()
    model = small_mlp(20)
    result = run_sequence(model, tasks, "naive", epochs=1, batch_size=16)
    for j, task in enumerate(tasks):
        score = evaluate(OutputSlice(model, task.outputs), task.test)["accuracy"]
        assert result.accuracy[-1][j] == pytest.approx(score)


def test_run_sequence_is_reproducible_from_its_seed():
    tasks = split_mnist(toy_splits(), "class")[:2]
    runs = [run_sequence(small_mlp(), tasks, "naive", batch_size=8, seed=s).accuracy
            for s in (0, 0)]
    assert runs[0] == runs[1]


def test_learned_tasks_are_tested_but_not_trained():
    tasks = two_tasks()
    model = small_mlp(20)
    before = copy.deepcopy(model)
    result = run_sequence(model, tasks, "freeze", learned=1, batch_size=16)
    first = evaluate(OutputSlice(before, tasks[0].outputs), tasks[0].test)["accuracy"]
    assert result.accuracy[0][0] == pytest.approx(first)
    assert result.learned == 1 and all(r["task"] == 1 for r in result.curve)


def test_freezing_the_body_with_separate_heads_forgets_nothing():
    tasks = two_tasks("separate")
    model = small_mlp(20)
    result = run_sequence(model, tasks, FreezeBody(), epochs=2, batch_size=16, lr=0.1)
    assert result.accuracy[1][0] == result.accuracy[0][0]
    assert result.summary()["forgetting"] == 0
    assert not any(p.requires_grad for p in model.features.parameters())


def test_replay_trains_on_old_examples_and_stores_images():
    tasks = split_mnist(toy_splits(), "class")[:2]
    replay = Replay(capacity=20, share=0.5)
    replay.start(small_mlp(), tasks)
    replay.after_task(None, 0, tasks[0])
    mixed, outputs = replay.training_set(1, tasks[1])
    assert outputs == (0, 1, 2, 3)  # old and new classes compete in one softmax
    assert len(mixed) == 2 * len(tasks[1].train)
    assert set(mixed.labels.tolist()) == {0, 1, 2, 3}
    assert replay.memory() == len(replay.buffer) * 28 * 28


def test_ewc_and_l2sp_penalise_only_after_the_first_task():
    tasks = two_tasks("shared")
    for remedy in (EWC(lam=1.0, n_samples=10), L2SP(alpha=0.1)):
        model = small_mlp()
        remedy.start(model, tasks)
        assert remedy.penalty(model) is None and remedy.memory() == 0
        remedy.after_task(model, 0, tasks[0])
        assert remedy.penalty(model).item() == 0.0  # at the anchor
        with torch.no_grad():
            model.head.bias.add_(1.0)
        assert remedy.penalty(model).item() > 0
        assert remedy.memory() > 0


def test_ewc_stiffness_is_lambda_times_the_largest_summed_fisher():
    tasks = two_tasks("shared")
    model = small_mlp()
    ewc = EWC(lam=4.0, n_samples=10)
    ewc.start(model, tasks)
    assert ewc.stiffness() == 0.0
    ewc.after_task(model, 0, tasks[0])
    ewc.after_task(model, 1, tasks[1])
    (f0, _), (f1, _) = ewc._memory
    largest = max((f0[n] + f1[n]).max().item() for n in f0)
    assert ewc.stiffness() == pytest.approx(4.0 * largest)


def test_compare_remedies_runs_each_remedy_on_a_copy():
    tasks = split_mnist(toy_splits(), "class")[:2]
    model = small_mlp()
    start = copy.deepcopy(model.state_dict())
    results = compare_remedies(model, tasks, {"plain": "naive", "buffer": Replay(capacity=10)},
                               batch_size=8)
    assert list(results) == ["plain", "buffer"]
    assert [r.label for r in results.values()] == ["plain", "buffer"]
    assert all(torch.equal(start[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="remedies is empty"):
        compare_remedies(model, tasks, {})


# --- bad input --------------------------------------------------------------------------------

def test_task_accuracies_read_each_task_from_its_own_output_units():
    tasks = two_tasks("separate")
    model = small_mlp(20)
    scores = task_accuracies(model, tasks)
    assert scores == [pytest.approx(evaluate(OutputSlice(model, t.outputs), t.test)["accuracy"])
                      for t in tasks]


def test_joint_training_learns_every_task_of_a_class_incremental_sequence():
    tasks = split_mnist(toy_splits(), "class")
    sequential = run_sequence(small_mlp(), tasks, "naive", epochs=20, batch_size=8, lr=0.1)
    model = small_mlp()
    joint = joint_training(model, tasks, epochs=20, batch_size=8, lr=0.1)
    assert joint["remedy"] == "joint" and len(joint["accuracy"]) == len(tasks)
    assert joint["accuracy"] == task_accuracies(model, tasks)  # the model was trained in place
    assert joint["average_accuracy"] == pytest.approx(sum(joint["accuracy"]) / len(tasks))
    assert min(joint["accuracy"]) > 0.9                   # nothing is taken away: all kept
    assert sequential.accuracy[-1][0] < 0.5               # while one after the other forgets


def test_joint_training_trains_each_task_on_its_own_units():
    tasks = two_tasks("separate")  # task a on units 0-9, task b on 10-19
    model = small_mlp(20)
    joint = joint_training(model, tasks, epochs=5, batch_size=8, lr=0.1)
    assert min(joint["accuracy"]) > 0.9
    again = joint_training(small_mlp(20), tasks, epochs=5, batch_size=8, lr=0.1)
    assert again["accuracy"] == joint["accuracy"]        # reproducible from its seed


def test_joint_training_refuses_bad_settings():
    with pytest.raises(ValueError, match="epochs"):
        joint_training(small_mlp(), split_mnist(toy_splits(), "class"), epochs=0)
    with pytest.raises(ValueError, match="empty"):
        joint_training(small_mlp(), [])


def test_an_empty_task_sequence_is_refused():
    with pytest.raises(ValueError, match="task sequence is empty"):
        run_sequence(small_mlp(), [], "naive")


def test_an_unknown_remedy_lists_the_accepted_ones():
    tasks = two_tasks("shared")
    accepted = ", ".join(repr(name) for name in REMEDIES)
    with pytest.raises(ValueError, match=f"remedy='ewk' is not one of {accepted}"):
        run_sequence(small_mlp(), tasks, "ewk")
    assert list(REMEDIES) == ["naive", "freeze", "low_lr", "replay", "ewc", "l2sp"]


def test_bad_remedy_options_are_refused():
    with pytest.raises(ValueError, match="factor=2"):
        make_remedy("low_lr", factor=2)
    with pytest.raises(ValueError, match="share=1"):
        make_remedy("replay", share=1)
    with pytest.raises(ValueError, match="lam=-1"):
        make_remedy("ewc", lam=-1)
    with pytest.raises(ValueError, match="alpha=-0.5"):
        make_remedy("l2sp", alpha=-0.5)
    with pytest.raises(ValueError, match="capacity=0"):
        make_remedy("replay", capacity=0)
    with pytest.raises(ValueError, match="ready-made remedy"):
        make_remedy(EWC(), lam=3)


def test_a_model_with_too_few_outputs_is_refused():
    tasks = two_tasks("separate")  # 20 output units
    with pytest.raises(ValueError, match="the tasks use 20 output units but the model has 10"):
        run_sequence(small_mlp(10), tasks)


def test_bad_run_settings_are_refused():
    tasks = two_tasks("shared")
    with pytest.raises(ValueError, match="learned=2"):
        run_sequence(small_mlp(), tasks, learned=2)
    with pytest.raises(ValueError, match="eval_every=0"):
        run_sequence(small_mlp(), tasks, eval_every=0)
    with pytest.raises(ValueError, match="epochs=0"):
        run_sequence(small_mlp(), tasks, epochs=0)


# --- the MLP and the plots --------------------------------------------------------------------

def test_mlp_has_a_named_body_and_head():
    model = MLP(7, hidden=(32, 16))
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 7)
    assert model.head.in_features == 16
    assert [n for n, _ in model.features.named_children()] == ["flatten", "fc1", "fc2"]
    with pytest.raises(ValueError, match="hidden=0"):
        MLP(10, hidden=(0,))
    with pytest.raises(ValueError, match="at least one layer"):
        MLP(10, hidden=())


def test_accuracy_heatmaps_show_each_matrix():
    results = [SequenceResult("a", ["t0", "t1"], [[1.0, 0.0], [0.5, 0.9]]),
               SequenceResult("b", ["t0", "t1"], [[0.8, 0.1], [0.7, 0.8]])]
    fig = plot_accuracy_matrices(results, ncols=2)
    panels = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["a", "b"]
    for ax, result in zip(panels, results, strict=True):
        shown = torch.tensor(ax.images[0].get_array(), dtype=torch.float64)
        assert torch.allclose(shown, torch.tensor(result.accuracy, dtype=torch.float64))
        assert [t.get_text() for t in ax.texts] == [f"{100 * v:.0f}" for row in result.accuracy
                                                    for v in row]


def test_task_curves_draw_one_line_per_task_over_the_whole_sequence():
    curve = [{"task": 1, "step": s, "accuracy": [1 - s / 10, s / 10]} for s in (0, 5, 10)]
    result = SequenceResult("run", ["t0", "t1"], [[1.0, 0.0], [0.0, 1.0]], curve=curve)
    fig = plot_task_curves([result])
    lines = fig.axes[0].get_lines()
    data = [line for line in lines if line.get_label().startswith("task")]
    assert [line.get_label() for line in data] == ["task t0", "task t1"]
    assert list(data[0].get_xdata()) == [0, 5, 10]
    assert list(data[1].get_ydata()) == [0.0, 0.5, 1.0]
