"""Random-weight construction: deterministic, buffers intact, sane scale, right dtype and device."""

from __future__ import annotations

import torch

from sdshape.models.build import POOL_SIZE, build_random, count_params, fill_parameters, meta_module
from sdshape.models.zoo import get_component


def test_build_is_deterministic_and_keeps_buffers():
    spec = get_component("tiny-clip")
    first = build_random(spec, torch.device("cpu"), torch.float32, seed=3)
    second = build_random(spec, torch.device("cpu"), torch.float32, seed=3)
    other = build_random(spec, torch.device("cpu"), torch.float32, seed=4)
    for (name, a), (_, b), (_, c) in zip(
        first.named_parameters(), second.named_parameters(), other.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name
        if a.ndim > 1:
            assert not torch.equal(a, c), name
    position_ids = dict(first.named_buffers())["encoders.0.embeddings.position_ids"]
    assert torch.equal(position_ids[0], torch.arange(77))
    assert count_params(first) == count_params(meta_module(spec))


def test_fill_scale_norms_and_biases():
    layer = torch.nn.Sequential(torch.nn.Linear(400, 300), torch.nn.LayerNorm(300))
    fill_parameters(layer, seed=0)
    weight = layer[0].weight
    bound = 1 / 400**0.5
    assert weight.abs().max() <= bound + 1e-7
    assert weight.std() > bound / 3  # uniform(-b, b) has std b/sqrt(3)
    assert torch.count_nonzero(layer[0].bias) == 0
    assert torch.all(layer[1].weight == 1)


def test_fill_covers_tensors_larger_than_the_pool():
    big = torch.nn.Linear(POOL_SIZE // 100 + 7, 203)
    fill_parameters(big, seed=1)
    assert torch.count_nonzero(big.weight) > 0.99 * big.weight.numel()


def test_build_in_bf16():
    module = build_random(get_component("tiny-vae"), torch.device("cpu"), torch.bfloat16)
    assert {p.dtype for p in module.parameters()} == {torch.bfloat16}
    assert all(p.device.type == "cpu" for p in module.parameters())
