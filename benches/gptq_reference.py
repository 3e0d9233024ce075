"""The reference GPTQ (IST-DASLab's `gptq.py`: `GPTQ.add_batch` and `GPTQ.fasterquant`, fp32 on the CPU),
timed on the layer of `cargo bench --bench algos`: 4096 x 4096 weights, 2048 calibration tokens, 4 bits,
groups of 128, block 128, damping 1%, no act-order.

It is the peer of the bench's GPTQ figures (the target: at most half the time of the reference PyTorch
implementation on the same machine and thread count). Run by the bench when python3 can import torch;
alone:

    python3 benches/gptq_reference.py THREADS [REPS]

Prints one line, `hessian_s solve_s`: the medians of REPS (default 3) runs of the Hessian accumulation
(one `add_batch` of the 2048 tokens, as the bench's one `Calibration::add`) and of the solve
(`fasterquant`: dead columns, damping, Cholesky, the inverse's upper factor, the blocked column loop).
The data are random (the timings do not depend on the values); the algorithm is written out here as
the reference has it, with its per-group min/max quantizer (`Quantizer.find_params`, `perchannel=True`).
"""
import math
import statistics
import sys
import time

import torch

ROWS, COLS, TOKENS = 4096, 4096, 2048
BITS, GROUP, BLOCK, PERCDAMP = 4, 128, 128, 0.01


def quantize(x, scale, zero, maxq):
    q = torch.clamp(torch.round(x / scale) + zero, 0, maxq)
    return scale * (q - zero)


def find_params(x, maxq):
    """Quantizer.find_params(x, weight=True) with perchannel=True, sym=False: one scale per row."""
    xmin = torch.minimum(x.min(1).values, torch.zeros(x.shape[0]))
    xmax = torch.maximum(x.max(1).values, torch.zeros(x.shape[0]))
    tmp = (xmin == 0) & (xmax == 0)
    xmin[tmp] = -1
    xmax[tmp] = +1
    scale = (xmax - xmin) / maxq
    zero = torch.round(-xmin / scale)
    return scale.unsqueeze(1), zero.unsqueeze(1)


class Gptq:
    def __init__(self, weight):
        self.weight = weight
        self.columns = weight.shape[1]
        self.H = torch.zeros((self.columns, self.columns))
        self.nsamples = 0

    def add_batch(self, inp):
        tmp = inp.shape[0]
        inp = inp.t()
        self.H *= self.nsamples / (self.nsamples + tmp)
        self.nsamples += tmp
        inp = math.sqrt(2 / self.nsamples) * inp.float()
        self.H += inp.matmul(inp.t())

    def fasterquant(self, blocksize=BLOCK, percdamp=PERCDAMP, groupsize=GROUP):
        W = self.weight.clone().float()
        maxq = 2**BITS - 1
        H = self.H
        del self.H
        dead = torch.diag(H) == 0
        H[dead, dead] = 1
        W[:, dead] = 0
        Q = torch.zeros_like(W)
        damp = percdamp * torch.mean(torch.diag(H))
        diag = torch.arange(self.columns)
        H[diag, diag] += damp
        H = torch.linalg.cholesky(H)
        H = torch.cholesky_inverse(H)
        H = torch.linalg.cholesky(H, upper=True)
        Hinv = H
        scale = zero = None
        for i1 in range(0, self.columns, blocksize):
            i2 = min(i1 + blocksize, self.columns)
            count = i2 - i1
            W1 = W[:, i1:i2].clone()
            Q1 = torch.zeros_like(W1)
            Err1 = torch.zeros_like(W1)
            Hinv1 = Hinv[i1:i2, i1:i2]
            for i in range(count):
                w = W1[:, i]
                d = Hinv1[i, i]
                if (i1 + i) % groupsize == 0:
                    scale, zero = find_params(W[:, (i1 + i):(i1 + i + groupsize)], maxq)
                q = quantize(w.unsqueeze(1), scale, zero, maxq).flatten()
                Q1[:, i] = q
                err1 = (w - q) / d
                W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
                Err1[:, i] = err1
            Q[:, i1:i2] = Q1
            W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
        return Q


def main():
    threads = int(sys.argv[1])
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    weight = torch.randn(ROWS, COLS) * 0.02
    x = torch.rand(TOKENS, COLS) * 4 - 2
    x[:, ::97] *= 20  # a few outlier channels, as the bench's activations have
    hessian, solve = [], []
    for _ in range(reps):
        g = Gptq(weight)
        t0 = time.perf_counter()
        g.add_batch(x)
        t1 = time.perf_counter()
        q = g.fasterquant()
        t2 = time.perf_counter()
        assert torch.isfinite(q).all()
        hessian.append(t1 - t0)
        solve.append(t2 - t1)
    print(f"{statistics.median(hessian):.3f} {statistics.median(solve):.3f}")


if __name__ == "__main__":
    main()
