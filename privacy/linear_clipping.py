"""Per-sample clipping for models made of ``nn.Linear`` layers, in one backward pass.

For a linear layer with a 2-D input, record i's weight gradient is the outer
product g_i a_iᵀ of its output gradient and its input, so its squared norm is
‖g_i‖²‖a_i‖² (plus ‖g_i‖² for the bias) without ever being formed, and the
clipped sum Σ c_i g_i a_iᵀ is one matrix product (cᵀ⊙G)ᵀA. This is Opacus's
"ghost clipping" (Li et al. 2022; Bu et al. 2023) without its second backward
pass: a step costs about what a non-private one does. Clipping is Opacus's flat
clipping to the letter: one norm over every parameter, factor min(1, C/(‖∇_i‖+1e-6)).

A record whose input or output gradient holds a non-finite entry gets clip factor
0 (its whole gradient dropped, a function of that record alone, so the step's
sensitivity stays C); Opacus's path zeroes only the offending entries. The model
must not mix records in its forward (BatchNorm is refused; fedsynth's models are
linear layers and element-wise activations).
"""

from __future__ import annotations

import torch
from torch import nn

# Layers whose output for one record depends on the batch's other records.
MIXING = (nn.modules.batchnorm._BatchNorm, nn.SyncBatchNorm)


class LinearClipper:
    """Hooks on every ``nn.Linear`` of a module that yield per-sample clipped gradient sums."""

    def __init__(self, module: nn.Module, *, loss_reduction: str = "mean"):
        if loss_reduction not in ("mean", "sum"):
            raise ValueError(f"loss_reduction={loss_reduction!r}; expected mean or sum")
        self.module = module
        self.loss_reduction = loss_reduction
        self.layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
        linear = {id(p) for layer in self.layers for p in layer.parameters()}
        other = [name for name, p in module.named_parameters()
                 if p.requires_grad and id(p) not in linear]
        if other:
            raise ValueError(f"only nn.Linear layers can be clipped here, not {other}")
        mixing = [name for name, m in module.named_modules() if isinstance(m, MIXING)]
        if mixing:  # one record's gradient would depend on the others'
            raise ValueError(f"layers that mix the records of a batch cannot be clipped per "
                             f"sample: {mixing}")
        self.enabled = True
        self._inputs: dict[nn.Linear, torch.Tensor] = {}
        self._grads: dict[nn.Linear, torch.Tensor] = {}
        self._handles = [layer.register_forward_hook(self._save_input)
                         for layer in self.layers]

    def _save_input(self, layer: nn.Linear, inputs, output) -> None:
        if not self.enabled or not output.requires_grad:
            return
        if layer in self._inputs:
            raise RuntimeError("a linear layer ran twice in one step; per-sample clipping "
                               "here needs each layer once per step")
        if inputs[0].dim() != 2:
            raise RuntimeError(f"a linear layer got a {inputs[0].dim()}-D input; expected 2-D")
        self._inputs[layer] = inputs[0].detach()
        # A tensor hook on the output: cheaper than a module's full backward hook.
        output.register_hook(lambda grad, layer=layer: self._grads.__setitem__(layer, grad))

    def clear(self) -> None:
        """Forget the step's activations and gradients."""
        self._inputs.clear()
        self._grads.clear()

    def remove(self) -> None:
        """Remove every hook (the module is plain again)."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.clear()

    def clipped_sums(self, max_norm: float) -> dict[nn.Parameter, torch.Tensor]:
        """Each parameter's sum over records of its per-record gradient, clipped at ``max_norm``."""
        layers = [layer for layer in self.layers if layer in self._grads]
        if not layers:  # an empty batch, or no layer took part: nothing to sum
            return {p: torch.zeros_like(p) for layer in self.layers
                    for p in layer.parameters() if p.requires_grad}
        batch = len(self._inputs[layers[0]])
        scale = float(batch) if self.loss_reduction == "mean" else 1.0
        # Norms in float64, the scale applied before squaring: in float32 a tiny output
        # gradient times a huge input (weights a coordinator chose) squares to zero and
        # that record's gradient would escape its clipping.
        squared = torch.zeros(batch, dtype=torch.float64)
        for layer in layers:
            g2 = (self._grads[layer].double() * scale).square().sum(dim=1)
            a2 = self._inputs[layer].double().square().sum(dim=1)
            squared += g2 * (a2 + 1.0) if layer.bias is not None else g2 * a2
        finite = torch.isfinite(squared)  # an inf or NaN anywhere in a record shows here
        factor = (max_norm / (squared.sqrt() + 1e-6)).clamp(max=1.0)
        clean = bool(finite.all())
        if not clean:
            factor = torch.where(finite, factor, torch.zeros_like(factor))
        sums = {}
        for layer in layers:
            g, a = self._grads[layer], self._inputs[layer]
            if not clean:
                g, a = torch.nan_to_num(g), torch.nan_to_num(a)
            g = g * (factor * scale).to(g.dtype)[:, None]
            sums[layer.weight] = g.T @ a
            if layer.bias is not None:
                sums[layer.bias] = g.sum(dim=0)
        for layer in self.layers:
            if layer not in self._grads:
                for p in layer.parameters():
                    sums[p] = torch.zeros_like(p)
        return sums


def clipped_gradient_sum(network: nn.Module, per_record_loss, records: int,
                         max_norm: float) -> dict[nn.Parameter, torch.Tensor]:
    """Σ over ``records`` records of each one's gradient over ``network``, clipped at ``max_norm``.

    ``per_record_loss()`` runs the forward pass with the clipping hooks on and returns one
    loss per record; it is not called when ``records`` is 0 (the sums are then zeros).
    The network's gradients are cleared before and after, and its hooks removed.
    """
    clipper = LinearClipper(network, loss_reduction="mean")
    try:
        network.zero_grad(set_to_none=True)
        if records:
            (per_record_loss().sum() / records).backward()
        return clipper.clipped_sums(max_norm)
    finally:
        clipper.remove()
        network.zero_grad(set_to_none=True)
