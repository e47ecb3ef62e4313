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
                      max_grad_norm=1.0, normaliser=8, learning_rate=0.1, accountant="rdp")
    assert seen, "the generator trained"
    for z, labels, cond in seen:
        assert z.shape[1] == model.latent_dim  # noise, not a record
        assert any(labels is d or torch.equal(labels, d.repeat(2)) for d in drawn), \
            "labels are drawn uniformly (in the mode-seeking pairs), never real ones"
        assert not cond.any()  # no frequencies were given: no condition


def test_only_the_discriminator_is_private_and_every_step_is_counted(monkeypatch):
    model, data = _gan(), _data()
    g_before = [p.detach().clone() for p in model.generator.parameters()]
    out = train_private_gan(model, data, steps=5, noise_multiplier=1.0, sample_rate=0.25,
                            max_grad_norm=1.0, normaliser=8, learning_rate=0.1,
                            accountant="rdp")
    assert out.steps == 5
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


def _summed_clipped_gradient(model, real_x, real_y, num_fakes, clip):
    """The discriminator step's sum of clipped per-record gradients, before any noise."""
    from privacy.linear_clipping import LinearClipper

    clipper = LinearClipper(model.discriminator)
    torch.manual_seed(5)  # the same fakes for both batches
    x, y, target = gan_training.discriminator_batch(model, real_x, real_y, num_fakes)
    gan_training.discriminator_loss(model.discriminator, x, y, target).backward()
    sums = clipper.clipped_sums(clip)
    total = torch.cat([sums[p].flatten() for p in model.discriminator.parameters()])
    clipper.remove()
    model.zero_grad(set_to_none=True)
    return total


def test_adding_one_record_moves_the_summed_clipped_gradient_by_at_most_c():
    """P12: a fixed, public number of fakes, so one more real record adds one clipped term."""
    model, data, clip = _gan(), _data(), 0.05
    x, y = torch.from_numpy(data.x), torch.from_numpy(data.y)
    without = _summed_clipped_gradient(model, x[:9], y[:9], num_fakes=16, clip=clip)
    with_one = _summed_clipped_gradient(model, x[:10], y[:10], num_fakes=16, clip=clip)
    moved = (with_one - without).norm().item()
    assert 0 < moved <= clip * (1 + 1e-5)


def test_fakes_per_step_do_not_follow_the_private_batch(monkeypatch):
    model, data = _gan(), _data()
    sizes = []
    original = gan_training.discriminator_batch

    def spy(model, real_x, real_y, num_fakes):
        x, y, target = original(model, real_x, real_y, num_fakes)
        sizes.append((len(real_x), int((target == 0).sum())))
        return x, y, target

    monkeypatch.setattr(gan_training, "discriminator_batch", spy)
    train_private_gan(model, data, steps=6, noise_multiplier=1.0, sample_rate=0.3,
                      max_grad_norm=1.0, normaliser=7, learning_rate=0.1, accountant="rdp")
    assert len({real for real, _ in sizes}) > 1, "Poisson real batches vary"
    assert {fakes for _, fakes in sizes} == {7}


def test_a_public_batch_of_one_fake_still_moves_the_generator():
    model, data = _gan(), _data()
    before = [p.detach().clone() for p in model.generator.parameters()]
    train_private_gan(model, data, steps=2, noise_multiplier=1.0, sample_rate=0.25,
                      max_grad_norm=1.0, normaliser=1, learning_rate=0.1, accountant="rdp")
    after = list(model.generator.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
