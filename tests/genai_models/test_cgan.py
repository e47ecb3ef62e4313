import torch
from opacus.validators import ModuleValidator

from genai_models import DIGITS, build_model


def test_gan_samples_labelled_images_in_range_and_is_opacus_compatible():
    model = build_model("gan", DIGITS, hidden_dim=16, latent_dim=3)
    x, y = model.sample(6, torch.tensor([1, 1, 2, 2, 9, 9]))
    assert x.shape == (6, 64) and y.tolist() == [1, 1, 2, 2, 9, 9]
    assert (x >= 0).all() and (x <= 1).all()
    assert model.discriminator(x, y).shape == (6,)
    assert ModuleValidator.validate(model.discriminator, strict=False) == []
    keys = model.state_dict().keys()
    assert any(k.startswith("generator.") for k in keys)
    assert any(k.startswith("discriminator.") for k in keys)


def test_table_gan_fakes_look_like_encoded_rows():
    """Categoricals come out (nearly) one-hot, booleans near 0/1; draws are exact rows."""
    from genai_models.data_spec import DataSpec
    from genai_models.table_codec import OutputHeads

    heads = OutputHeads(categorical=((0, 3), (4, 2)), numeric=(3,))
    spec = DataSpec(name="t", kind="table", num_features=7, num_classes=2, heads=heads)
    model = build_model("gan", spec, hidden_dim=16, latent_dim=3)
    torch.manual_seed(0)
    fake = model.generate(torch.tensor([0, 1] * 200))
    assert fake.requires_grad
    assert torch.allclose(fake[:, 0:3].sum(1), torch.ones(400), atol=1e-5)
    assert fake[:, 0:3].max(1).values.median() > 0.9  # Gumbel-softmax at 0.2
    binary = fake[:, 6]
    assert ((binary < 0.1) | (binary > 0.9)).float().mean() > 0.5  # relaxed Bernoulli
    x, y = model.sample(400, generator=torch.Generator().manual_seed(1))
    again, _ = model.sample(400, generator=torch.Generator().manual_seed(1))
    assert torch.equal(x, again)  # the release's draws follow its generator
    assert set(x[:, [0, 1, 2, 4, 5, 6]].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(x[:, 0:3].sum(1), torch.ones(400)) and torch.equal(x[:, 4:6].sum(1), torch.ones(400))
    assert ((x[:, 3] > 0) & (x[:, 3] < 1)).all()
