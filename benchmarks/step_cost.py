"""What a DP step costs against a non-private one, per way of getting per-sample gradients.

One thread (as each simulated owner gets), digits, a batch of 64 records, the
project's own models and losses; each mode clips per sample at C = 1 and sums
(no noise: it costs the same in every mode). Modes:

- ``nonprivate``: forward, backward, nothing else (the reference);
- ``opacus-hooks``: Opacus's GradSampleModule (what fedsynth used before);
- ``opacus-functorch``: the same with functorch's vmap'd per-sample gradients;
- ``opacus-ew``: torch's expanded weights;
- ``linear-ghost``: :mod:`privacy.linear_clipping` (norms from activations and output
  gradients, clipped sum as one matrix product per layer: what fedsynth uses now).

Run: ``.venv/bin/python benchmarks/step_cost.py`` (about a minute). Prints a table of
median milliseconds per step and the ratio to the non-private step.
"""

from __future__ import annotations

import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from genai_models import DIGITS, build_model  # noqa: E402
from privacy.linear_clipping import LinearClipper  # noqa: E402

BATCH, REPEATS, CLIP = 64, 60, 1.0


def _loss(model_name: str, module, x, y):
    if model_name == "gan":
        target = torch.ones(len(x))
        logits = module(x, y)
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, target,
                                                                    reduction="sum") / len(x)
    return module(x, y).sum() / len(x)


def _opacus(mode: str, module):
    from opacus import GradSampleModule
    from opacus.grad_sample import GradSampleModuleExpandedWeights
    from opacus.optimizers import DPOptimizer

    if mode == "opacus-ew":
        private = GradSampleModuleExpandedWeights(module, batch_first=True,
                                                  loss_reduction="mean")
    else:
        private = GradSampleModule(module, batch_first=True, loss_reduction="mean",
                                   force_functorch=mode == "opacus-functorch")
    opt = DPOptimizer(torch.optim.SGD(module.parameters(), lr=0.01), noise_multiplier=0.0,
                      max_grad_norm=CLIP, expected_batch_size=BATCH)
    return private, opt


def time_mode(mode: str, model_name: str, hidden: int) -> float:
    """Median seconds of one step of ``mode``."""
    torch.manual_seed(0)
    model = build_model(model_name, DIGITS, hidden_dim=hidden, latent_dim=4)
    module = model.discriminator if model_name == "gan" else model
    x, y = torch.rand(BATCH, 64), torch.randint(0, 10, (BATCH,))
    if mode == "nonprivate":
        opt = torch.optim.SGD(module.parameters(), lr=0.01)

        def step():
            opt.zero_grad(set_to_none=True)
            _loss(model_name, module, x, y).backward()
            opt.step()
    elif mode == "linear-ghost":
        clipper = LinearClipper(module)
        opt = torch.optim.SGD(module.parameters(), lr=0.01)

        def step():
            opt.zero_grad(set_to_none=True)
            _loss(model_name, module, x, y).backward()
            for p, s in clipper.clipped_sums(CLIP).items():
                p.grad = s / BATCH
            clipper.clear()
            opt.step()
    else:
        private, dp_opt = _opacus(mode, module)

        def step():
            dp_opt.zero_grad(set_to_none=True)
            _loss(model_name, private, x, y).backward()
            dp_opt.step()
    times = []
    for i in range(REPEATS + 5):
        t0 = time.perf_counter()
        step()
        if i >= 5:  # warm-up steps excluded
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def training_step_cost(model_name: str, hidden: int) -> tuple[float, float]:
    """Seconds per step of the project's own trainers: DP (noise included) and non-private."""
    import numpy as np

    from client.dataset import LabelledData
    from client.dp_training import train_nonprivate, train_private
    from client.gan_training import train_nonprivate_gan, train_private_gan

    rng = np.random.default_rng(0)
    data = LabelledData(rng.random((256, 64), dtype=np.float32), rng.integers(0, 10, 256))
    private = train_private_gan if model_name == "gan" else train_private
    plain = train_nonprivate_gan if model_name == "gan" else train_nonprivate
    out = []
    for train, kwargs in (
        (private, {"steps": 80, "noise_multiplier": 1.0, "sample_rate": 0.25,
                   "max_grad_norm": CLIP, "normaliser": BATCH, "learning_rate": 0.1,
                   "accountant": "rdp"}),
        (plain, {"epochs": 20, "batch_size": BATCH, "learning_rate": 0.1}),
    ):
        model = build_model(model_name, DIGITS, hidden_dim=hidden, latent_dim=4)
        t0 = time.perf_counter()
        outcome = train(model, data, **kwargs)
        out.append((time.perf_counter() - t0) / outcome.steps)
    return out[0], out[1]


def main() -> None:
    """Print the step-cost tables."""
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    print("The project's trainers, per step (Poisson batches of 64 expected, noise in secure "
          "mode; GAN: a discriminator and a generator step):\n")
    print("| model | hidden | non-private | DP | ratio |")
    print("| --- | --- | --- | --- | --- |")
    training_step_cost("vae", 64)  # warm-up: first calls pay for imports and caches
    for model_name, hidden in (("vae", 64), ("vae", 256), ("gan", 64), ("gan", 256)):
        dp, plain = training_step_cost(model_name, hidden)
        print(f"| {model_name} | {hidden} | {plain * 1e3:.2f} ms | {dp * 1e3:.2f} ms | "
              f"{dp / plain:.1f}x |")
    print("\nPer-sample clipping alone (batch of 64, no noise):\n")
    modes = ("nonprivate", "opacus-hooks", "opacus-functorch", "opacus-ew", "linear-ghost")
    print(f"| model | hidden | {' | '.join(modes)} |")
    print(f"| --- | --- | {' | '.join('---' for _ in modes)} |")
    for model_name, hidden in (("vae", 64), ("vae", 256), ("gan", 64), ("gan", 256)):
        cells, base = [], None
        for mode in modes:
            try:
                seconds = time_mode(mode, model_name, hidden)
            except Exception as err:  # a mode Opacus cannot run on this model: say so
                cells.append(f"fails ({type(err).__name__})")
                continue
            base = base or seconds
            cells.append(f"{seconds * 1e3:.2f} ms ({seconds / base:.1f}x)")
        print(f"| {model_name} | {hidden} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
