"""Invariant P1 for the GAN: only the discriminator sees real records, through DP-SGD."""

import numpy as np
import torch

import client.gan_training as gan_training
from client.dataset import LabelledData
from client.gan_training import train_nonprivate_gan, train_private_gan
from genai_models import DIGITS, build_model
from genai_models.cgan import ConditionalGAN


def _data(n=40):
    rng = np.random.default_rng(0)
    return LabelledData(rng.random((n, 64), dtype=np.float32), rng.integers(0, 10, n))


def _gan():
    torch.manual_seed(0)
    model = build_model("gan", DIGITS, hidden_dim=16, latent_dim=3)
    assert isinstance(model, ConditionalGAN)
    return model


def test_generator_never_receives_a_real_record_or_label(monkeypatch):
    model, data = _gan(), _data()
    drawn = []
    real_randint = torch.randint

    def spy_randint(*args, **kwargs):
        out = real_randint(*args, **kwargs)
        drawn.append(out)
        return out

    monkeypatch.setattr(gan_training.torch, "randint", spy_randint)
    seen = []

    def record(module, inputs):
        seen.append(inputs)

    model.generator.register_forward_pre_hook(record)
    train_private_gan(model, data, steps=4, noise_multiplier=1.0, sample_rate=0.25,
                      max_grad_norm=1.0, learning_rate=0.1, accountant="rdp", history=[])
    assert seen, "the generator trained"
    for z, labels in seen:
        assert z.shape[1] == model.latent_dim  # noise, not a record
        assert any(labels is d for d in drawn), "labels are drawn uniformly, never real ones"


def test_only_the_discriminator_is_private_and_every_step_is_counted(monkeypatch):
    model, data = _gan(), _data()
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    out = train_private_gan(model, data, steps=5, noise_multiplier=1.0, sample_rate=0.25,
                            max_grad_norm=1.0, learning_rate=0.1, accountant="rdp",
                            history=[(1.0, 0.25, 3)])
    assert out.steps == 5 and out.history == [(1.0, 0.25, 8)]
    assert any(not torch.equal(a, b) for a, b in zip(g_before, model.generator.parameters(), strict=True))
    # Opacus hooks are gone: the module is plain again for the next round's averaging.
    assert not hasattr(model.discriminator, "_module")
    assert all(getattr(p, "grad_sample", None) is None for p in model.parameters())


def test_nonprivate_baseline_trains_both_networks():
    model, data = _gan(), _data()
    before = [p.detach().clone() for p in model.parameters()]
    out = train_nonprivate_gan(model, data, epochs=1, batch_size=10, learning_rate=0.1)
    assert out.steps == 4
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
