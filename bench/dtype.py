"""Benchmark: the sweep engine in fp32 against the same sweep under bf16 autocast, in one run.

Why it exists: bf16 would be the way to a faster engine on CPUs with AMX, but it must
not cost the KL precision the claims' 0.1-nat threshold needs. This prints both
throughputs, the speed ratio, and how far the bf16 KLs are from the fp32 ones, so
the trade can be judged on the machine at hand (the CPU's bf16 flags are printed too).

    python bench/dtype.py [--prompts 64] [--layer 1] [--radii 21]
"""
from __future__ import annotations

import argparse
import time

import torch

from mcis_claims import load_model, sweep
from mcis_claims.engine import resid_pre
from mcis_claims.prompts import load_corpus, sample_prompts


def cpu_bf16_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "unknown"
    found = sorted(f for f in flags if f.startswith("amx") or f == "avx512_bf16")
    return ", ".join(found) or "none (no AMX, no avx512_bf16)"


def timed_sweep(model, layer, tokens, u, radii, autocast: bool):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        sweep(model, layer, tokens[:2], u[:2], radii)  # warm-up
        started = time.perf_counter()
        result = sweep(model, layer, tokens, u, radii)
    return result, time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--layer", type=int, default=1)
    parser.add_argument("--radii", type=int, default=21)
    args = parser.parse_args()

    model = load_model("smollm2-135m")
    tokens = sample_prompts(load_corpus("lee"), model.tokenizer, args.prompts, length=10, seed=0).tokens
    u = torch.randn(args.prompts, model.d_model, generator=torch.Generator().manual_seed(0))
    u /= u.norm(dim=-1, keepdim=True)
    median_norm = resid_pre(model, args.layer, tokens)[:, -1].norm(dim=-1).median()
    radii = torch.linspace(0, 2, args.radii) * median_norm

    fp32, t_fp32 = timed_sweep(model, args.layer, tokens, u, radii, autocast=False)
    bf16, t_bf16 = timed_sweep(model, args.layer, tokens, u, radii, autocast=True)
    rows = args.prompts * args.radii
    err = (bf16.kl - fp32.kl).abs()
    small = fp32.kl < 0.1  # below the claims' threshold: where a noise floor would move radii-to-threshold

    print(f"workload: {model.name}, layer {args.layer}, {args.prompts} prompts x {args.radii} radii, "
          f"{torch.get_num_threads()} threads; CPU bf16 support: {cpu_bf16_flags()}")
    print(f"fp32:          {rows} rows in {t_fp32:6.2f} s = {rows / t_fp32:7.1f} /s")
    print(f"bf16 autocast: {rows} rows in {t_bf16:6.2f} s = {rows / t_bf16:7.1f} /s")
    print(f"bf16 KL error: max {err.max():.3g} nats; median {err[small].median():.3g} nats where fp32 KL < 0.1")
    print(f"speedup (bf16 over fp32): {t_fp32 / t_bf16:.2f}x")


if __name__ == "__main__":
    main()
