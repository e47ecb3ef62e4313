"""The coordinator's side of a distributed-noise GAN round: the fakes' term is clipped per fake."""

from types import SimpleNamespace

import torch

from genai_models import build_model, resolve
from server.secure_round import SecureRound


def test_the_fakes_term_is_a_mean_of_per_fake_gradients_clipped_at_c():
    torch.manual_seed(0)
    model = build_model("gan", resolve("digits")[0], hidden_dim=32, latent_dim=8)
    with torch.no_grad():  # raw mean gradient norm ~950 here, far above C
        for p in model.discriminator.parameters():
            p.mul_(50.0)
    round_ = SimpleNamespace(model=model, plan=SimpleNamespace(max_grad_norm=0.5))
    term = SecureRound._fakes_term(round_, 64)
    disc = list(model.discriminator.parameters())
    assert set(term) == set(disc)  # every discriminator weight, nothing of the generator
    norm = torch.cat([term[p].reshape(-1) for p in disc]).norm().item()
    assert 0.05 < norm <= 0.5 + 1e-5
    assert all(p.grad is None for p in model.parameters())  # nothing left behind
