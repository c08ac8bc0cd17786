#!/usr/bin/env python3
"""PyTorch reference for bench/train_bench.cpp: training tokens/s of the same LLaMA-shaped model,
LoRA configuration (or full fine-tuning), batch and context, on the CPU.

    python3 bench/train_torch.py [--embd 256 --layers 4 --ff 768 --heads 8 --kv-heads 2
                                  --vocab 4096] [--mode lora|full] [--rank 16] [--batch 8]
                                 [--ctx 128] [--steps 5] [--threads 2] [--bf16]

Plain PyTorch (no PEFT, no compile): RMSNorm, RoPE, grouped-query causal attention (matmul, mask,
softmax, matmul: torch 1.13 has no fused attention), SwiGLU, a LoRA pair (A: Kaiming-uniform, B: 0,
scale alpha / r) on every projection of q,k,v,o,gate,up,down, AdamW over the trainable tensors,
cross-entropy over all positions. The first step is a warm-up; the rest are timed. Peak memory is
the process's maximum resident set (ru_maxrss).

Debian's python3-torch multiplies F32 matrices through whichever libblas.so.3 the alternatives
system selects: the reference BLAS unless OpenBLAS is installed (apt-get install
libopenblas0-pthread). The script prints torch's BLAS configuration so a result says which ran.
Used only for benchmarks: nothing in kandil's build or tests needs Python or torch.
"""
import argparse
import math
import os
import resource
import time

import torch
import torch.nn.functional as F


class Lora(torch.nn.Module):
    def __init__(self, n_in, n_out, rank, alpha, lora):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.randn(n_out, n_in) / math.sqrt(n_in))
        self.lora = lora
        if lora:
            self.weight.requires_grad_(False)
            self.a = torch.nn.Parameter(torch.empty(rank, n_in))
            torch.nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
            self.b = torch.nn.Parameter(torch.zeros(n_out, rank))
            self.scale = alpha / rank

    def forward(self, x):
        y = F.linear(x, self.weight)
        if self.lora:
            y = y + self.scale * F.linear(F.linear(x, self.a), self.b)
        return y


def rms_norm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):  # x [B, H, T, D], NeoX-free LLaMA layout: pairs (2i, 2i+1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2)


class Block(torch.nn.Module):
    def __init__(self, a, lora):
        super().__init__()
        d, hd = a.embd, a.embd // a.heads
        self.h, self.hkv, self.hd = a.heads, a.kv_heads, hd
        mk = lambda i, o: Lora(i, o, a.rank, a.alpha, lora)  # noqa: E731
        self.q, self.k, self.v = mk(d, d), mk(d, a.kv_heads * hd), mk(d, a.kv_heads * hd)
        self.o = mk(d, d)
        self.gate, self.up, self.down = mk(d, a.ff), mk(d, a.ff), mk(a.ff, d)
        self.n1 = torch.nn.Parameter(torch.ones(d), requires_grad=not lora)
        self.n2 = torch.nn.Parameter(torch.ones(d), requires_grad=not lora)

    def forward(self, x, cos, sin):
        B, T, _ = x.shape
        h = rms_norm(x, self.n1)
        q = self.q(h).view(B, T, self.h, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.hkv, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.hkv, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = self.h // self.hkv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(self.hd))
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)
        att = torch.softmax(s.masked_fill(mask, float("-inf")), dim=-1) @ v
        x = x + self.o(att.transpose(1, 2).reshape(B, T, -1))
        h = rms_norm(x, self.n2)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class Model(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        lora = a.mode == "lora"
        self.embd = torch.nn.Embedding(a.vocab, a.embd)
        self.embd.weight.requires_grad_(not lora)
        self.blocks = torch.nn.ModuleList(Block(a, lora) for _ in range(a.layers))
        self.norm = torch.nn.Parameter(torch.ones(a.embd), requires_grad=not lora)
        self.out = torch.nn.Linear(a.embd, a.vocab, bias=False)
        self.out.weight.requires_grad_(not lora)
        hd = a.embd // a.heads
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))
        ang = torch.arange(a.ctx).float()[:, None] * inv[None, :]
        self.register_buffer("cos", ang.cos())
        self.register_buffer("sin", ang.sin())

    def forward(self, tokens):
        x = self.embd(tokens)
        for b in self.blocks:
            x = b(x, self.cos, self.sin)
        return self.out(rms_norm(x, self.norm))


def loaded_blas():
    """The BLAS libraries mapped into this process (Debian: the libblas.so.3 alternative)."""
    with open("/proc/self/maps") as maps:
        libs = {line.split()[-1] for line in maps if "blas" in line.lower() and "/" in line}
    return ", ".join(sorted(os.path.realpath(x) for x in libs)) or "none mapped"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--embd", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--ff", type=int, default=768)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--mode", choices=["lora", "full"], default="lora")
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=32.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--ctx", type=int, default=128)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--bf16", action="store_true", help="autocast matmuls to BF16 (oneDNN)")
    a = p.parse_args()
    torch.manual_seed(1)
    torch.set_num_threads(a.threads)
    torch.ones(64, 64) @ torch.ones(64, 64)  # loads the BLAS
    print(f"torch {torch.__version__}, {a.threads} threads, BLAS: {loaded_blas()}")
    model = Model(a)
    params = [t for t in model.parameters() if t.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.0)
    tokens = torch.randint(0, a.vocab, (a.batch, a.ctx + 1))
    x, y = tokens[:, :-1], tokens[:, 1:]
    total = 0.0
    for s in range(a.steps + 1):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, a.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        dt = time.perf_counter() - t0
        print(f"step {s} loss {loss.item():.4f} {dt:.3f} s{' (warm-up)' if s == 0 else ''}")
        if s > 0:
            total += dt
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    n_train = sum(t.numel() for t in params)
    print(f"pytorch {a.mode} rank {a.rank} B {a.batch} T {a.ctx} threads {a.threads} "
          f"{'bf16' if a.bf16 else 'f32'}: {a.batch * a.ctx * a.steps / total:.1f} tokens/s, "
          f"peak RSS {peak:.0f} MiB, {n_train} trainable")


if __name__ == "__main__":
    main()
