#!/usr/bin/env python3
"""The plain PyTorch reference that issue 6's goals compare against, to be run on the same machine
and in the same session as our benchmarks (ratios from one run, not from two machines).

The seed's Part B UNet (§1.1, §2.1, §2.4) written the obvious way, with PyTorch's defaults, and the
obvious loops: a flow-matching training step with Adam (as BM_TrainStep) and Euler sampling with
classifier-free guidance, conditional and unconditional either as two calls or batched (as
BM_SampleFlowCFG). Needs Debian's python3-torch (the same 1.13 kernels as our LibTorch); not part
of CI.

    SCOREFLOW_BENCH_THREADS=2 python3 benchmarks/reference_pytorch.py [--quick]
    SCOREFLOW_BENCH_THREADS=2 python3 benchmarks/reference_pytorch.py --time-to-quality   # the seed's
        300-step loop alone, for BM_SampleToQuality (issue 14)

Prints one JSON object per configuration: images_per_second (wall), cpu_images_per_second.
"""
import json
import os
import sys
import time

import torch
import torch.nn as nn


class Conv(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(nn.Conv2d(i, o, 3, 1, 1), nn.BatchNorm2d(o), nn.GELU())


class DownConv(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(nn.Conv2d(i, o, 3, 2, 1), nn.BatchNorm2d(o), nn.GELU())


class UpConv(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(nn.ConvTranspose2d(i, o, 4, 2, 1), nn.BatchNorm2d(o), nn.GELU())


class Flatten(nn.Sequential):
    def __init__(self):
        super().__init__(nn.AvgPool2d(7), nn.GELU())


class Unflatten(nn.Sequential):
    def __init__(self, c):
        super().__init__(nn.ConvTranspose2d(c, c, 7, 7, 0), nn.BatchNorm2d(c), nn.GELU())


class ConvBlock(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(Conv(i, o), Conv(o, o))


class DownBlock(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(DownConv(i, o), ConvBlock(o, o))


class UpBlock(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(UpConv(i, o), ConvBlock(o, o))


class FCBlock(nn.Sequential):
    def __init__(self, i, o):
        super().__init__(nn.Linear(i, o), nn.GELU(), nn.Linear(o, o))


class UNet(nn.Module):
    """mode: 'uncond' (§1.1), 'time' (§2.1: u0·fc1_t, u1·fc2_t), 'class' (§2.4: c·u + t)."""

    def __init__(self, d, mode, num_classes=10):
        super().__init__()
        self.mode = mode
        self.in_block, self.down1, self.down2 = ConvBlock(1, d), DownBlock(d, d), DownBlock(d, 2 * d)
        self.flatten, self.unflatten = Flatten(), Unflatten(2 * d)
        self.up1, self.up2 = UpBlock(4 * d, d), UpBlock(2 * d, d)
        self.out_block, self.out_conv = ConvBlock(2 * d, d), nn.Conv2d(d, 1, 3, 1, 1)
        if mode != "uncond":
            self.fc1_t, self.fc2_t = FCBlock(1, 2 * d), FCBlock(1, d)
        if mode == "class":
            self.fc1_c, self.fc2_c = FCBlock(num_classes, 2 * d), FCBlock(num_classes, d)

    def forward(self, x, t=None, c=None):
        e1 = self.in_block(x)
        e2 = self.down1(e1)
        e3 = self.down2(e2)
        u0 = self.unflatten(self.flatten(e3))
        if self.mode == "time":
            u0 = u0 * self.fc1_t(t)[:, :, None, None]
        elif self.mode == "class":
            u0 = self.fc1_c(c)[:, :, None, None] * u0 + self.fc1_t(t)[:, :, None, None]
        u1 = self.up1(torch.cat([u0, e3], 1))
        if self.mode == "time":
            u1 = u1 * self.fc2_t(t)[:, :, None, None]
        elif self.mode == "class":
            u1 = self.fc2_c(c)[:, :, None, None] * u1 + self.fc2_t(t)[:, :, None, None]
        u2 = self.up2(torch.cat([u1, e2], 1))
        return self.out_conv(self.out_block(torch.cat([u2, e1], 1)))


def clocks():
    return time.perf_counter(), time.process_time()


def report(name, images, wall0, cpu0):
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(json.dumps({"name": name, "images_per_second": images / wall, "cpu_images_per_second": images / cpu,
                      "seconds": wall, "threads": torch.get_num_threads()}), flush=True)


def train_steps(mode, d, batch, steps):
    torch.manual_seed(0)
    net = UNet(d, mode)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x1 = torch.rand(batch, 1, 28, 28)
    labels = torch.randint(0, 10, (batch,))

    def step():
        x0 = torch.randn_like(x1)
        t = torch.rand(batch, 1)
        xt = (1 - t[:, :, None, None]) * x0 + t[:, :, None, None] * x1
        if mode == "uncond":  # §1.2: the one-step denoiser, z = x + σε
            loss = ((net(x1 + 0.5 * x0) - x1) ** 2).mean()
        else:
            c = None
            if mode == "class":
                keep = (torch.rand(batch) >= 0.1).float()[:, None]
                c = nn.functional.one_hot(labels, 10).float() * keep
            loss = ((net(xt, t, c) - (x1 - x0)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up
    w, c = clocks()
    for _ in range(steps):
        step()
    report(f"reference/train/{mode}/D:{d}/batch:{batch}", steps * batch, w, c)


def sample(batched, steps, batch, repeats, gamma=5.0, d=64):
    torch.manual_seed(0)
    net = UNet(d, "class").eval()
    labels = torch.arange(batch) % 10
    c = nn.functional.one_hot(labels, 10).float()
    u = torch.zeros_like(c)

    def run():
        with torch.no_grad():
            x = torch.randn(batch, 1, 28, 28)
            for i in range(steps):
                t = torch.full((batch, 1), i / steps)
                if batched:
                    v = net(torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, u]))
                    vc, vu = v[:batch], v[batch:]
                else:
                    vc, vu = net(x, t, c), net(x, t, u)
                x = x + (vu + gamma * (vc - vu)) / steps
        return x

    run()  # warm-up
    w, cc = clocks()
    for _ in range(repeats):
        run()
    report(f"reference/sample/euler/steps:{steps}/batch:{batch}/{'batched' if batched else 'two_calls'}", repeats * batch,
           w, cc)


def main():
    torch.set_num_threads(int(os.environ.get("SCOREFLOW_BENCH_THREADS", "2")))
    quick = "--quick" in sys.argv
    if "--time-to-quality" in sys.argv:  # the seed's loop as written: 300 Euler steps, two calls, γ = 5
        sample(False, 300, 40, 1)
        return
    steps = 2 if quick else 5
    train_steps("class", 64, 64, steps)
    train_steps("time", 64, 64, steps)
    train_steps("uncond", 128, 256, 1 if quick else 2)
    sample(False, 10, 40, 1 if quick else 3)
    sample(True, 10, 40, 1 if quick else 3)


if __name__ == "__main__":
    main()
