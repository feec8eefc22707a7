"""MNG-AC: stochastic adversarial training with a meta-learned noise generator and adversarial consistency.

As implemented here, after Madaan, Shin & Hwang, "Learning to generate noise for multi-attack robustness"
(ICML 2021):

* SAT: one threat k drawn uniformly per batch; x' = training attack of threat k.
* Noise generator g_phi (a small conv net, input-dependent): x_aug = clip_[0,1](x + eps_g tanh(g_phi([x, z]))),
  z ~ N(0, I) of the image's shape.  eps_g (``noise_eps``) bounds the noise in l_inf.
* Classifier loss (adversarial consistency, AC):

      L(theta) = CE(f(x'), y) + CE(f(x_aug), y) + beta * JSD(p_clean, p_adv, p_aug),

  JSD(p1, p2, p3) = (1/3) sum_j KL(p_j || M),  M = (p1 + p2 + p3)/3, averaged over the batch.
* Meta step for the generator (one-step lookahead): theta' = theta - inner_lr * grad_theta L(theta, phi),
  kept differentiable in phi; then phi takes an Adam step on CE(f_theta'(x'), y), the adversarial loss
  of the looked-ahead classifier.  The classifier then takes its own step on L with the updated
  generator.

Choices of this implementation (stated, not taken from the paper's code): the generator architecture
(three 3x3 convolutions, 16 channels), eps_g defaulting to the l_inf budget of the threats (0.1 without
an l_inf threat), beta = 6, inner_lr = 0.1, generator Adam lr 1e-3.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from .scheme_base import Scheme, ThreatSampler, adversarial_example, unwrap
from .utils import stream_seed

__all__ = ["NoiseGenerator", "MNGAC", "jensen_shannon"]


class NoiseGenerator(nn.Module):
    """g_phi: [x, z] (2C channels) -> noise in [-eps_g, eps_g]^{C x H x W} (three 3x3 convolutions)."""

    def __init__(self, channels: int = 1, width: int = 16, noise_eps: float = 0.3):
        super().__init__()
        if not noise_eps > 0:
            raise ValueError(f"noise_eps must be > 0, got {noise_eps}")
        self.noise_eps = float(noise_eps)
        self.net = nn.Sequential(
            nn.Conv2d(2 * channels, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.ReLU(),
            nn.Conv2d(width, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The augmented input x_aug = clip(x + eps_g tanh(g([x, z])), 0, 1)."""
        delta = self.noise_eps * torch.tanh(self.net(torch.cat([x, z], dim=1)))
        return (x + delta).clamp(0.0, 1.0)


def jensen_shannon(*logits: torch.Tensor) -> torch.Tensor:
    """JSD of the softmax distributions: (1/m) sum_j KL(p_j || mean_j p_j), averaged over the batch."""
    probs = [F.softmax(l.float(), dim=1) for l in logits]
    log_m = torch.stack(probs).mean(0).clamp_min(1e-7).log()
    return sum(F.kl_div(log_m, p, reduction="batchmean") for p in probs) / len(probs)


class MNGAC(Scheme):
    """SAT + adversarial consistency (JSD) + meta noise generator (see the module docstring)."""

    name = "mng_ac"
    n_threats = (2, None)

    def __init__(self, threats, *, attack_overrides=None, seed: int = 0, beta: float = 6.0,
                 inner_lr: float = 0.1, generator_lr: float = 1e-3, noise_eps: float | None = None,
                 channels: int | None = None, **options):
        super().__init__(threats, attack_overrides=attack_overrides, seed=seed, **options)
        for name, v in (("beta", beta), ("inner_lr", inner_lr), ("generator_lr", generator_lr)):
            if not v >= 0:
                raise ValueError(f"{name} must be >= 0, got {v}")
        if noise_eps is None:
            budgets = [float(t.eps) for t in self.threats if t.name == "linf"]
            noise_eps = min(budgets) if budgets else 0.1
        self.beta, self.inner_lr, self.generator_lr = float(beta), float(inner_lr), float(generator_lr)
        self.sampler = ThreatSampler(len(self.threats), self.seed)
        self._channels = channels
        self.noise_eps = float(noise_eps)
        self.generator_net: NoiseGenerator | None = None
        self.generator_opt: torch.optim.Optimizer | None = None
        self._pending_state: dict[str, Any] | None = None
        if channels is not None:
            self._build(channels, torch.device("cpu"))

    def _build(self, channels: int, device: torch.device) -> None:
        # Initialised from its own seed stream: independent of the global RNG and identical on all ranks
        # (nn.Module initialisers draw from the global generator, so it is forked and restored around them).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(stream_seed(self.seed, "noise_generator"))
            self.generator_net = NoiseGenerator(channels, noise_eps=self.noise_eps)
        self.generator_net.to(device)
        self.generator_opt = torch.optim.Adam(self.generator_net.parameters(), lr=self.generator_lr)
        if self._pending_state is not None:
            self._load(self._pending_state)
            self._pending_state = None

    def to(self, device):
        if self.generator_net is not None:
            self.generator_net.to(device)
        return self

    def state_dict(self):
        state = self.sampler.state_dict()
        if self.generator_net is not None:
            state["generator"] = self.generator_net.state_dict()
            state["generator_opt"] = self.generator_opt.state_dict()
        return state

    def _load(self, state):
        self.generator_net.load_state_dict(state["generator"])
        self.generator_opt.load_state_dict(state["generator_opt"])

    def load_state_dict(self, state):
        self.sampler.load_state_dict(state)
        if "generator" in state:
            if self.generator_net is None:
                self._pending_state = state  # built lazily at the first batch (channels known then)
            else:
                self._load(state)

    def _augment(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        z = torch.randn(x.shape, generator=generator, device="cpu").to(x.device)
        return self.generator_net(x, z)

    def _classifier_loss(self, logits_clean, logits_adv, logits_aug, y):
        return (F.cross_entropy(logits_adv, y) + F.cross_entropy(logits_aug, y)
                + self.beta * jensen_shannon(logits_clean, logits_adv, logits_aug))

    def _meta_step(self, model: nn.Module, x, x_adv, y, generator) -> float:
        """One-step lookahead update of the noise generator; returns its outer loss."""
        net = unwrap(model)
        params = dict(net.named_parameters())
        buffers = {k: b.clone() for k, b in net.named_buffers()}  # lookahead must not touch BN statistics
        x_aug = self._augment(x, generator)
        logits = functional_call(net, {**params, **buffers}, (torch.cat([x, x_adv, x_aug]),))
        lc, la, lg = logits.split(x.shape[0])
        inner = self._classifier_loss(lc, la, lg, y)
        names = [k for k, p in params.items() if p.requires_grad]
        grads = torch.autograd.grad(inner, [params[k] for k in names], create_graph=True)
        ahead = {k: params[k] - self.inner_lr * g for k, g in zip(names, grads)}
        outer = F.cross_entropy(functional_call(net, {**params, **ahead, **buffers}, (x_adv,)), y)
        self.generator_opt.zero_grad(set_to_none=True)
        gen_params = list(self.generator_net.parameters())
        g_grads = torch.autograd.grad(outer, gen_params)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for g in g_grads:  # keep the generator identical on every process
                dist.all_reduce(g)
                g.div_(dist.get_world_size())
        for p, g in zip(gen_params, g_grads):
            p.grad = g
        self.generator_opt.step()
        return float(outer.detach())

    def loss(self, model, x, y, generator):
        if self.generator_net is None:
            self._build(x.shape[1], x.device)
        k = self.sampler.draw()
        x_adv = adversarial_example(model, self.attacks[k], x, y, generator)
        outer = self._meta_step(model, x, x_adv, y, generator)
        with torch.no_grad():
            x_aug = self._augment(x, generator)
        logits = model(torch.cat([x, x_adv, x_aug]))
        lc, la, lg = logits.split(x.shape[0])
        return self._classifier_loss(lc, la, lg, y), {"threat": float(k), "meta_loss": outer}
