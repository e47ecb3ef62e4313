"""Training-by-sampling: conditions drawn from public frequencies, and a generator that obeys them."""

import pytest
import torch

from genai_models.cgan import ConditionalGAN
from genai_models.gan_steps import generator_step
from genai_models.table_codec import OutputHeads
from genai_models.training_by_sampling import Conditions

# Two categorical columns: 2 categories at positions 0-1, 3 categories at 3-5.
BLOCKS = ((0, 2), (3, 3))


@pytest.mark.parametrize("values, why", [
    ([1.0, 1.0, 1.0], "3 condition frequencies for 5 categories"),
    ([1.0, -0.1, 1.0, 1.0, 1.0], "finite and non-negative"),
    ([1.0, float("nan"), 1.0, 1.0, 1.0], "finite and non-negative"),
    ([1.0, 1.0, 0.0, 0.0, 0.0], "sum to zero"),
    ([True, 1.0, 1.0, 1.0, 1.0], "not a list of numbers"),
    (["1", 1.0, 1.0, 1.0, 1.0], "not a list of numbers"),
    ("0.5", "not a list of numbers"),
])
def test_frequencies_from_a_peer_are_checked(values, why):
    with pytest.raises(ValueError, match=why):
        Conditions(BLOCKS).frequencies(values)


def test_huge_frequencies_normalise_without_overflow():
    """Their float sum is infinite: divided by it, the column would be all zero.

    The multinomial draw would then fail in the middle of training, after the records
    were read (an owner stops after such a failure).
    """
    freqs = Conditions(BLOCKS).frequencies([1e308, 1e308, 1e-300, 0.0, 5e307])
    assert freqs.tolist() == pytest.approx([0.5, 0.5, 0.0, 0.0, 1.0])
    assert Conditions(BLOCKS).draw(50, freqs).sum() == 50



def test_frequencies_are_normalised_within_each_column():
    freqs = Conditions(BLOCKS).frequencies([30, 10, 1, 1, 2])
    assert freqs.tolist() == pytest.approx([0.75, 0.25, 0.25, 0.25, 0.5])


def test_conditions_pick_a_uniform_column_and_a_category_by_its_frequency():
    conditions = Conditions(BLOCKS)
    assert conditions.width == 5
    assert not conditions.draw(10, None).any()  # no frequencies: no condition
    cond = conditions.draw(20_000, conditions.frequencies([9, 1, 2, 3, 5]),
                           torch.Generator().manual_seed(0))
    assert (cond.sum(1) == 1).all()  # exactly one category of one column per row
    first = cond[:, :2].sum(1) == 1
    assert first.float().mean() == pytest.approx(0.5, abs=0.02)
    assert cond[first, 0].mean() == pytest.approx(0.9, abs=0.02)
    assert cond[~first, 2:].mean(0).tolist() == pytest.approx([0.2, 0.3, 0.5], abs=0.02)


def test_the_penalty_is_the_cross_entropy_of_the_conditioned_column_only():
    conditions = Conditions(BLOCKS)
    logits = torch.zeros(2, 6)
    logits[0, 1] = 5.0  # row 0 prefers category 1 of column 0, and is conditioned on it
    cond = torch.tensor([[0.0, 1, 0, 0, 0], [0, 0, 0, 0, 0]])  # row 1: no condition
    want = torch.nn.functional.cross_entropy(logits[:1, 0:2], torch.tensor([1])) / 2
    assert conditions.loss(logits, cond) == pytest.approx(float(want))
    assert conditions.loss(logits, torch.zeros(2, 5)) == 0


def test_the_counts_std_grows_with_the_square_root_of_the_blocks():
    assert Conditions(BLOCKS).count_blocks == 3
    assert Conditions().count_blocks == 1
    assert Conditions(((0, 2), (2, 2), (4, 2))).counts_std(10.0) == pytest.approx(20.0)


def test_a_conditioned_generator_releases_the_frequencies_it_was_trained_on():
    """The penalty alone makes the release's conditioned column follow the frequencies.

    (Against a discriminator that does not care: what the release's marginals rest on.)
    """
    torch.manual_seed(0)
    heads = OutputHeads(categorical=BLOCKS, numeric=(2,), conditioned=BLOCKS[1:])
    model = ConditionalGAN(6, 2, hidden_dim=32, latent_dim=8, heads=heads)
    model.condition_on([1, 1, 8])
    indifferent = lambda x, y: x.sum(1) * 0.0  # noqa: E731
    opt = torch.optim.Adam(model.generator.parameters(), lr=0.01)
    for _ in range(150):
        generator_step(model, indifferent, opt, 64, mode_seeking=0.0)
    x, _ = model.sample(4000, generator=torch.Generator().manual_seed(1))
    assert x[:, 3:].mean(0).tolist() == pytest.approx([0.1, 0.1, 0.8], abs=0.05)
    model.condition_on(None)  # no frequencies: the all-zero condition, still a valid draw
    assert model.sample(5)[0].shape == (5, 6)


def test_a_model_without_categorical_columns_ignores_frequencies():
    model = ConditionalGAN(4, 2, hidden_dim=8, latent_dim=4)  # an image-like model
    model.condition_on([1.0, 2.0])
    assert model.frequencies is None and model.conditions.width == 0


def test_a_schema_with_too_many_categories_conditions_on_none():
    """Their counts would not fit the signed event a coordinator reads: no conditioning."""
    from genai_models.schema import Column, Schema
    from genai_models.table_codec import MAX_CONDITIONED, TableCodec

    def schema(width):
        cats = [f"c{i}" for i in range(width)]
        return Schema(columns=(Column("a", "categorical", categories=tuple(cats)),
                               Column("y", "categorical", categories=("0", "1"))), target="y")

    assert TableCodec(schema(MAX_CONDITIONED)).heads().conditioned == ((0, MAX_CONDITIONED),)
    assert TableCodec(schema(MAX_CONDITIONED + 1)).heads().conditioned == ()
