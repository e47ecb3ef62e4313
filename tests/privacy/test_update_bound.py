"""The recipe's update bound holds for real training, and Adam's per-step bound for any gradient."""

import math

import numpy as np
import pytest
import torch

from client.dataset import LabelledData, load_partition
from client.dp_training import train_private
from client.gan_training import train_private_gan
from genai_models import build_model, resolve
from privacy.update_bound import (
    ADAM_BETAS,
    GENERATOR_BETAS,
    Recipe,
    adam_coordinate_bound,
    dp_sgd_bound,
)


@pytest.mark.parametrize("betas", [ADAM_BETAS, GENERATOR_BETAS])
def test_no_gradient_sequence_moves_an_adam_coordinate_further_than_the_bound(betas):
    rng = np.random.default_rng(0)
    for trial in range(30):
        w = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([w], lr=1.0, betas=betas)
        # Adversarial shapes: spikes after silence, alternating signs, heavy tails.
        grads = rng.standard_cauchy(60) * (rng.random(60) < 0.3)
        if trial % 3 == 0:
            grads[:-1] = 1e-8
            grads[-1] = 1e3
        for t, g in enumerate(grads, start=1):
            before = float(w.detach())
            w.grad = torch.tensor([g], dtype=torch.float32)
            opt.step()
            assert abs(float(w.detach()) - before) <= adam_coordinate_bound(*betas, t) * (1 + 1e-5)


def test_the_dp_sgd_bound_is_the_clipped_sum_plus_the_noise_tail():
    # One step, one record, no noise: the move is at most lr * C / B.
    assert dp_sgd_bound(0.5, 1, 10, clip=2.0, noise_multiplier=0.0, normaliser=4,
                        batch=1) == pytest.approx(0.25)
    noisy = dp_sgd_bound(1.0, 3, 100, clip=1.0, noise_multiplier=1.0, normaliser=10, batch=0)
    assert noisy == pytest.approx(3 * (math.sqrt(100) + 10) / 10)


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_real_dp_training_stays_within_the_bound(model):
    spec, _ = resolve("digits")
    torch.manual_seed(0)
    net = build_model(model, spec, hidden_dim=32, latent_dim=4)
    start = {k: v.clone() for k, v in net.state_dict().items()}
    part = load_partition("digits", 0, 4, scheme="iid", alpha=1.0, holdout=0.3, seed=0)
    data = LabelledData(part.x, part.y)
    args = {"steps": 8, "noise_multiplier": 1.0, "sample_rate": 0.25, "max_grad_norm": 1.0,
            "normaliser": 64, "learning_rate": 0.6, "accountant": "rdp"}
    (train_private_gan if model == "gan" else train_private)(net, data, **args)
    moved = math.sqrt(sum(float(((v - start[k]) ** 2).sum()) for k, v in net.state_dict().items()))
    recipe = Recipe(model=model, optimizer="sgd", learning_rate=0.6, max_grad_norm=1.0,
                    batch_size=64, proposal_noise=1.0)
    bound = recipe.bound({k: v.numel() for k, v in start.items()}, 8, 1.0)
    assert 0 < moved < bound
