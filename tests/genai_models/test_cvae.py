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


def _mixed_table(tmp_path):
    from genai_models import resolve

    schema = tmp_path / "mixed.toml"
    schema.write_text(
        'target = "y"\n\n'
        '[[columns]]\nname = "age"\ntype = "continuous"\nmin = 0\nmax = 100\n\n'
        '[[columns]]\nname = "city"\ntype = "categorical"\ncategories = ["a", "b", "c"]\n'
        'nullable = true\n\n'
        '[[columns]]\nname = "smoker"\ntype = "boolean"\n\n'
        '[[columns]]\nname = "y"\ntype = "categorical"\ncategories = ["no", "yes"]\n')
    return resolve("csv", str(schema))


def test_a_table_vae_has_a_head_per_column_and_samples_from_each(tmp_path):
    spec, codec = _mixed_table(tmp_path)
    assert spec.heads.categorical == ((1, 3),) and spec.heads.numeric == (0,)
    model = build_model("vae", spec, hidden_dim=16, latent_dim=2)
    # One extra output (a log-scale) per number; the schema's constants are not weights.
    assert model.decoder[-1].out_features == spec.num_features + 1
    assert set(model.state_dict()) == set(_model().state_dict())
    x, y = model.sample(500, generator=torch.Generator().manual_seed(0))
    city = x[:, 1:4]
    assert torch.equal(city.sum(dim=1), torch.ones(500))  # exactly one category each
    assert city.mean(dim=0).min() > 0.15  # drawn by probability, not always the likeliest
    assert set(x[:, 4:].unique().tolist()) <= {0.0, 1.0}  # missing flag, boolean: drawn
    assert x[:, 0].std() > 0.01 and (x[:, 0] >= 0).all() and (x[:, 0] <= 1).all()
    frame = codec.decode(x.numpy(), y.numpy())
    assert list(frame.columns) == ["age", "city", "smoker", "y"]
    loss = model(x, y)
    assert loss.shape == (500,) and torch.isfinite(loss).all()


def test_a_table_vae_trains_with_opacus_per_sample_gradients(tmp_path):
    from opacus import GradSampleModule

    spec, _ = _mixed_table(tmp_path)
    model = build_model("vae", spec, hidden_dim=16, latent_dim=2)
    assert ModuleValidator.validate(model, strict=False) == []
    private = GradSampleModule(model, batch_first=True, loss_reduction="mean")
    x, y = model.sample(8, generator=torch.Generator().manual_seed(1))
    private(x, y).mean().backward()
    for p in private.parameters():
        assert p.grad_sample.shape[0] == 8
