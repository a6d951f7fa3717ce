"""Benchmark: the cached, batched sweep engine against a naive loop, in the same run.

Workload (issue #2): the embedded model, layer 1, 10-token prompts of the Lee corpus,
21 radii. The naive loop is what published research code does: one full forward per
perturbed prompt with a hook that overwrites the last position, here both through the
TransformerLens bridge (`run_with_hooks`) and through a plain HF forward with a
pre-hook. The speedup is reported against the faster of the two. The batched baseline is what a
competent TransformerLens user writes instead: all perturbed copies of one prompt in one forward,
the perturbation added by a hook (on the bridge, and on the HF model); `speedup_vs_batched` is
against the faster of those.

    python bench/sweep.py [--prompts 64] [--naive-prompts 4] [--layer 1] [--device cpu|cuda] [--model NAME]

The engine runs the model's own path: a fast hand-written stack where there is one (Llama, GPT-2),
else the generic path (HF's decoder layers, e.g. gemma3-270m). Where a fast stack exists, the
generic path is timed too, on the same weights and prompts, so the ratio of the two is measured.

On a GPU, give the engine more prompts (e.g. --prompts 1024): 64 x 21 rows do not fill one.
"""
from __future__ import annotations

import argparse
import time

import torch

from mcis_claims import load_model, sweep
from mcis_claims.engine import _hf_blocks, resid_pre
from mcis_claims.hf_loading import _quiet_loading
from mcis_claims.models import _load_hf, canonical_name, wrap_hf_model
from mcis_claims.prompts import load_corpus, sample_prompts


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(device: torch.device, size: int, repeats: int = 10) -> float:
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def naive_bridge(model, layer, tokens, points):
    site = f"blocks.{layer}.hook_resid_pre"
    for i in range(tokens.shape[0]):
        clean = model.bridge(tokens[i : i + 1])[0, -1]
        for point in points[i]:
            def write(act, hook, point=point):
                act = act.clone()
                act[:, -1] = point
                return act
            logits = model.bridge.run_with_hooks(tokens[i : i + 1], fwd_hooks=[(site, write)])[0, -1]
            torch.kl_div(torch.log_softmax(logits, -1), torch.log_softmax(clean, -1), log_target=True)


def naive_hf(model, layer, tokens, points):
    block = _hf_blocks(model.hf_model)[layer]
    replacement = {}

    def write(module, args, kwargs):
        if "x" not in replacement:
            return None
        hidden = (args[0] if args else kwargs["hidden_states"]).clone()
        hidden[:, -1] = replacement["x"]
        return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

    handle = block.register_forward_pre_hook(write, with_kwargs=True)
    try:
        for i in range(tokens.shape[0]):
            replacement.pop("x", None)
            clean = model.hf_model(tokens[i : i + 1], use_cache=False).logits[0, -1]
            for point in points[i]:
                replacement["x"] = point
                logits = model.hf_model(tokens[i : i + 1], use_cache=False).logits[0, -1]
                torch.kl_div(torch.log_softmax(logits, -1), torch.log_softmax(clean, -1), log_target=True)
    finally:
        handle.remove()


def batched_bridge(model, layer, tokens, points):
    """What a TransformerLens user would write: every perturbed copy of a prompt in one forward,
    the perturbation written by a hook, the clean row in the same batch."""
    site = f"blocks.{layer}.hook_resid_pre"
    for i in range(tokens.shape[0]):
        rows = torch.cat([points.new_full((1, points.shape[-1]), float("nan")), points[i]])  # row 0: clean

        def write(act, hook, rows=rows):
            act = act.clone()
            act[1:, -1] = rows[1:]
            return act

        batch = tokens[i : i + 1].expand(rows.shape[0], -1)
        logits = model.bridge.run_with_hooks(batch, fwd_hooks=[(site, write)])[:, -1]
        logp = torch.log_softmax(logits.double(), -1)
        (logp[:1].exp() * (logp[:1] - logp[1:])).sum(-1)


def batched_hf(model, layer, tokens, points):
    """The same on the plain HF model, with a forward pre-hook on block `layer`."""
    block = _hf_blocks(model.hf_model)[layer]
    current = {}

    def write(module, args, kwargs):
        hidden = (args[0] if args else kwargs["hidden_states"]).clone()
        hidden[1:, -1] = current["rows"]
        return ((hidden, *args[1:]), kwargs) if args else (args, {**kwargs, "hidden_states": hidden})

    handle = block.register_forward_pre_hook(write, with_kwargs=True)
    try:
        for i in range(tokens.shape[0]):
            current["rows"] = points[i]
            batch = tokens[i : i + 1].expand(points.shape[1] + 1, -1)
            logits = model.hf_model(batch, use_cache=False).logits[:, -1]
            logp = torch.log_softmax(logits.double(), -1)
            (logp[:1].exp() * (logp[:1] - logp[1:])).sum(-1)
    finally:
        handle.remove()


def timed(device, fn, *args):
    synchronize(device)
    started = time.perf_counter()
    with torch.no_grad():
        fn(*args)
    synchronize(device)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64, help="prompts for the engine")
    parser.add_argument("--naive-prompts", type=int, default=4, help="prompts for each naive loop")
    parser.add_argument("--batched-prompts", type=int, default=16,
                        help="prompts for each batched baseline (all of a prompt's perturbations in one forward)")
    parser.add_argument("--layer", type=int, default=1)
    parser.add_argument("--radii", type=int, default=21)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:<index> or auto")
    parser.add_argument("--model", default="smollm2-135m", help="any --models name (default: the embedded model)")
    args = parser.parse_args()

    torch.manual_seed(0)
    model = load_model(args.model, device=args.device)
    device = model.device
    prompts = sample_prompts(load_corpus("lee"), model.tokenizer, args.prompts, length=10, seed=0)
    tokens = prompts.tokens
    base = resid_pre(model, args.layer, tokens)[:, -1]
    u = torch.randn(args.prompts, model.d_model)
    u /= u.norm(dim=-1, keepdim=True)
    radii = torch.linspace(0, 2, args.radii) * base.norm(dim=-1).median()
    points = base[:, None] + radii[None, :, None] * u[:, None]

    peak_size = 8192 if device.type == "cuda" else 2048  # a GPU needs a larger product to reach its peak
    peak = matmul_peak_gflops(device, peak_size)
    sweep(model, args.layer, tokens[:2], u[:2], radii)  # warm-up
    t_engine = timed(device, sweep, model, args.layer, tokens, u, radii)
    t_generic = None
    if model.stack.path != "generic":  # the same weights through the generic path, for the ratio
        with _quiet_loading():
            hf_model, tokenizer, *_ = _load_hf(canonical_name(args.model))
        generic = wrap_hf_model(model.name, hf_model, tokenizer, device=device, engine="generic")
        sweep(generic, args.layer, tokens[:2], u[:2], radii)  # warm-up
        t_generic = timed(device, sweep, generic, args.layer, tokens, u, radii)
    n_naive = min(args.naive_prompts, args.prompts)
    naive_tokens, naive_points = tokens[:n_naive].to(device), points[:n_naive].to(device)
    t_bridge = timed(device, naive_bridge, model, args.layer, naive_tokens, naive_points)
    t_hf = timed(device, naive_hf, model, args.layer, naive_tokens, naive_points)
    n_batched = min(args.batched_prompts, args.prompts)
    batched_tokens, batched_points = tokens[:n_batched].to(device), points[:n_batched].to(device)
    batched_bridge(model, args.layer, batched_tokens[:1], batched_points[:1])  # warm-up
    t_batched_bridge = timed(device, batched_bridge, model, args.layer, batched_tokens, batched_points)
    t_batched_hf = timed(device, batched_hf, model, args.layer, batched_tokens, batched_points)

    rows_engine = args.prompts * args.radii
    rows_naive = n_naive * args.radii
    rate_engine = rows_engine / t_engine
    rate_bridge = rows_naive / t_bridge
    rate_hf = rows_naive / t_hf
    gflops = model.stack.flops_per_row(args.layer) * rows_engine / t_engine / 1e9
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"cpu, {torch.get_num_threads()} threads")
    print(f"workload: {model.name} ({model.arch}), layer {args.layer}, 10-token prompts, {args.radii} radii, fp32, {where}")
    print(f"fp32 matmul peak (measured, {peak_size}^2): {peak:.1f} GFLOPS")
    path = f"{model.stack.path} path, {type(model.stack).__name__}"
    print(f"engine ({path}): {rows_engine:5d} perturbed prompts in {t_engine:7.2f} s = {rate_engine:8.1f} /s "
          f"({gflops:.1f} GFLOPS, {gflops / peak:.0%} of peak)")
    if t_generic is not None:
        rate_generic = rows_engine / t_generic
        print(f"engine (generic path, HFStack): {rows_engine:5d} perturbed prompts in {t_generic:7.2f} s = "
              f"{rate_generic:8.1f} /s; fast / generic = {rate_engine / rate_generic:.2f}x")
    print(f"naive (TL bridge): {rows_naive:5d} perturbed prompts in {t_bridge:7.2f} s = {rate_bridge:8.1f} /s")
    print(f"naive (HF hook):   {rows_naive:5d} perturbed prompts in {t_hf:7.2f} s = {rate_hf:8.1f} /s")
    rows_batched = n_batched * args.radii
    rate_batched_bridge, rate_batched_hf = rows_batched / t_batched_bridge, rows_batched / t_batched_hf
    print(f"batched (TL bridge, a prompt's perturbations in one forward): {rows_batched:5d} perturbed prompts in "
          f"{t_batched_bridge:7.2f} s = {rate_batched_bridge:8.1f} /s")
    print(f"batched (HF hook, the same):                                  {rows_batched:5d} perturbed prompts in "
          f"{t_batched_hf:7.2f} s = {rate_batched_hf:8.1f} /s")
    print(f"speedup vs TL bridge loop: {rate_engine / rate_bridge:.1f}x")
    print(f"speedup_vs_batched: {rate_engine / max(rate_batched_bridge, rate_batched_hf):.1f}x")
    print(f"speedup: {rate_engine / max(rate_bridge, rate_hf):.1f}x")


if __name__ == "__main__":
    main()
