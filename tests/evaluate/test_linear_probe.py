import torch

from evaluate.linear_probe import choose_weight_decay, fit_linear_probe, probe_objective


def _blobs(n_per_class, dim, separation, seed):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(3, dim, generator=g) * separation
    labels = torch.arange(3).repeat_interleave(n_per_class)
    return centres[labels] + torch.randn(len(labels), dim, generator=g), labels


def test_the_fit_is_the_optimum_of_the_penalised_objective():
    x, y = _blobs(20, 5, 1.0, seed=0)
    probe = fit_linear_probe(x, y, 3, weight_decay=0.1, max_iter=200)
    z = (x.double() - probe.mean) / probe.std
    w = probe.weight.clone().requires_grad_(True)
    b = probe.bias.clone().requires_grad_(True)
    probe_objective(z, y, w, b, 0.1).backward()
    assert w.grad.abs().max() < 1e-6 and b.grad.abs().max() < 1e-6  # a stationary point of a convex objective


def test_separable_classes_are_learned_and_a_huge_penalty_leaves_the_class_prior():
    x, y = _blobs(30, 8, 4.0, seed=1)
    assert (fit_linear_probe(x, y, 3, 1e-4, 200).scores(x).argmax(1) == y).all()
    x_skewed, y_skewed = x[:70], y[:70]  # 30, 30 and 10 videos: class 0 comes first among the two largest
    flat = fit_linear_probe(x_skewed, y_skewed, 3, 1e6, 200)
    assert flat.weight.abs().max() < 1e-4
    prior = torch.bincount(y_skewed, minlength=3).double() / 70
    assert torch.allclose(flat.bias.softmax(0), prior, atol=1e-4)  # the unpenalised bias fits the prior


def test_standardisation_makes_the_probe_blind_to_feature_scale():
    x, y = _blobs(20, 6, 2.0, seed=2)
    scaled = x * torch.tensor([1e3, 1e-3, 1, 10, 0.1, 5])
    a = fit_linear_probe(x, y, 3, 0.01, 300).scores(x)
    b = fit_linear_probe(scaled, y, 3, 0.01, 300).scores(scaled)
    assert torch.allclose(a, b, atol=1e-5)


def test_the_weight_decay_comes_from_validation_and_ties_go_to_the_stronger_penalty():
    x, y = _blobs(40, 20, 0.6, seed=3)
    fit, val = (x[::2], y[::2]), (x[1::2], y[1::2])
    grid = [1e-4, 1e-2, 1.0, 100.0]
    best, accuracy = choose_weight_decay(fit, val, 3, grid, 200)
    assert set(accuracy) == set(grid) and accuracy[best] == max(accuracy.values())
    assert best == max(wd for wd in grid if accuracy[wd] == accuracy[best])
    same = [1.0, 2.0]  # two penalties that classify the validation part alike
    x2, y2 = _blobs(30, 4, 6.0, seed=4)
    best2, accuracy2 = choose_weight_decay((x2, y2), (x2, y2), 3, same, 200)
    assert accuracy2[1.0] == accuracy2[2.0] == 1.0 and best2 == 2.0
