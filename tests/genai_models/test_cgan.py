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
