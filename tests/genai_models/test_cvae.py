import pytest
import torch
from opacus.validators import ModuleValidator

from genai_models import DIGITS, build_model
from genai_models.cvae import ConditionalVAE


def _model():
    return build_model("vae", DIGITS, hidden_dim=32, latent_dim=4)


def test_forward_gives_one_loss_per_record():
    model = _model()
    x = torch.rand(5, 64)
    loss = model(x, torch.tensor([0, 1, 2, 3, 9]))
    assert loss.shape == (5,)
    assert torch.isfinite(loss).all() and (loss > 0).all()


def test_sample_honours_labels_and_range():
    model = _model()
    x, y = model.sample(6, torch.tensor([3, 3, 3, 7, 7, 7]), generator=torch.Generator().manual_seed(0))
    assert x.shape == (6, 64)
    assert y.tolist() == [3, 3, 3, 7, 7, 7]
    assert (x >= 0).all() and (x <= 1).all()


def test_sample_without_labels_is_balanced():
    _, y = _model().sample(20)
    assert torch.bincount(y, minlength=10).tolist() == [2] * 10


def test_sample_rejects_wrong_label_count():
    with pytest.raises(ValueError, match="3 labels for n=2"):
        _model().sample(2, torch.tensor([1, 2, 3]))


def test_sampling_is_seeded():
    model = _model()
    a, _ = model.sample(4, generator=torch.Generator().manual_seed(7))
    b, _ = model.sample(4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_opacus_validator_accepts_the_model():
    assert ModuleValidator.validate(_model(), strict=False) == []
    assert isinstance(_model(), ConditionalVAE)


def test_unknown_model_lists_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown model 'diffusion'; allowed: gan, vae"):
        build_model("diffusion", DIGITS, hidden_dim=8, latent_dim=2)
