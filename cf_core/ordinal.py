"""The ordered-probit output of the Bayesian fit: ratings as a few ordered levels, not a Gaussian around a line.

Albert and Chib (1993): each rating has a latent z = f + e, e ~ N(0, 1), and the rating is level c where z falls
between the cutpoints tau_{c-1} and tau_c. Given the latent values the model's conditionals are the Gaussian ones of
`bayes.py` with a noise precision of 1, so the sampler draws, before each sweep's weights:
- the cutpoints given f, the latent values integrated out, by Metropolis-Hastings steps on (tau_1, log of the gaps)
  (Cowles 1996: drawing them given z instead barely moves them, the gaps between neighbouring z being tiny), the
  step size adapted to an acceptance rate near 0.3;
- each rating's latent value from its normal truncated to its level's interval, by the inverse CDF (on the side of
  the interval where the CDF is accurate).
A draw predicts the expected rating, sum_c level_c P(c) = level_C - sum_c (level_{c+1} - level_c) Phi(tau_c - f);
the fit predicts the average of the draws' (`models.PosteriorDraws`). myFM reports this output a step better than
the Gaussian on MovieLens 100k; here it was better on the random split (0.8789 against 0.8822) and on all five
robustness checks (`bench/accuracy.py`, bench/README.md).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch.special import log_ndtr, ndtr, ndtri

MH_STEPS = 10  # Metropolis-Hastings steps on the cutpoints per sweep (each is one pass over the ratings)


def expected(levels: torch.Tensor, cutpoints: torch.Tensor, f: torch.Tensor, spread: float = 1.0) -> torch.Tensor:
    """The expected rating of latent means f (any shape) under cutpoints (f's shape + (levels - 1,), or (levels - 1,)),
    both in units of `spread` times the latent noise's."""
    cdf = ndtr((cutpoints - f[..., None]) / spread)
    return levels[-1] - (cdf * (levels[1:] - levels[:-1])).sum(-1)


class Probit(NamedTuple):
    """An ordered probit in rating units about the global mean: the levels, the cutpoints between them, the latent
    noise's standard deviation."""
    levels: torch.Tensor
    cutpoints: torch.Tensor
    spread: float

    def log_prob(self, x: torch.Tensor, rating: torch.Tensor) -> torch.Tensor:
        """log P(rating | linear output x), each rating at its nearest level (both about the global mean)."""
        level = (rating[:, None] - self.levels).abs().argmin(1)
        inf = torch.full((1,), math.inf, dtype=self.cutpoints.dtype, device=self.cutpoints.device)
        edges = torch.cat([-inf, self.cutpoints, inf])
        a, b = ((e - x) / self.spread for e in (edges[level], edges[level + 1]))
        return _log_interval(a.clamp(-38, 38), b.clamp(-38, 38))  # finite, for finite gradients at the outer edges


def _log_interval(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """log(Phi(b) - Phi(a)) for a < b, from the tail where it is accurate."""
    flip = a > 0
    a, b = torch.where(flip, -b, a), torch.where(flip, -a, b)
    lb = log_ndtr(b)
    return lb + torch.log1p(-torch.exp(log_ndtr(a) - lb).clamp(max=1 - 1e-16))


class OrderedProbit:
    """The cutpoints and latent values of one fit. `rating`: the training ratings; `levels`: their distinct values,
    ascending; `mean`, `scale`: the sampler's standardization (latent 0 and 1 are the mean and one `scale`)."""

    def __init__(self, rating: torch.Tensor, levels: torch.Tensor, mean: float, scale: float, gen: torch.Generator):
        self.levels = levels.double().to(rating.device)
        self.level = torch.searchsorted(self.levels, rating.double().contiguous())
        std = (self.levels - mean) / scale
        self.tau = (std[1:] + std[:-1]) / 2  # from the midpoints between the standardized levels
        self.step, self.accepted, self.tried = 0.02, 0, 0
        self.gen = gen

    def _bounds(self, tau: torch.Tensor, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inf = torch.full((1,), math.inf, dtype=tau.dtype, device=tau.device)
        edges = torch.cat([-inf, tau, inf])
        return edges[self.level] - f, edges[self.level + 1] - f

    def _log_likelihood(self, tau: torch.Tensor, f: torch.Tensor) -> float:
        return float(_log_interval(*self._bounds(tau, f)).sum())

    def draw_cutpoints(self, f: torch.Tensor) -> None:
        """MH_STEPS random-walk steps on (tau_1, log gaps), flat prior, given the latent means f."""
        g = torch.cat([self.tau[:1], (self.tau[1:] - self.tau[:-1]).log()])
        ll = self._log_likelihood(self.tau, f)
        for _ in range(MH_STEPS):
            g2 = g + self.step * torch.randn(len(g), dtype=g.dtype, device=g.device, generator=self.gen)
            tau2 = torch.cat([g2[:1], g2[1:].exp()]).cumsum(0)
            ll2 = self._log_likelihood(tau2, f)
            self.tried += 1
            u = float(torch.rand(1, dtype=g.dtype, device=g.device, generator=self.gen))
            if math.log(max(u, 1e-300)) < ll2 - ll:
                g, ll, self.tau = g2, ll2, tau2
                self.accepted += 1
        if self.tried >= 50:  # towards an acceptance rate of 0.2 to 0.35
            rate = self.accepted / self.tried
            self.step *= 1.2 if rate > 0.35 else 0.8 if rate < 0.2 else 1.0
            self.accepted = self.tried = 0

    def draw_latent(self, f: torch.Tensor) -> torch.Tensor:
        """Each rating's latent value, from N(f, 1) truncated to its level's interval."""
        a, b = self._bounds(self.tau, f)
        flip = a > 0  # draw -z from the mirrored interval, where the CDF is far from 1
        a, b = torch.where(flip, -b, a), torch.where(flip, -a, b)
        pa, pb = ndtr(a), ndtr(b)
        u = pa + torch.rand(len(f), dtype=f.dtype, device=f.device, generator=self.gen) * (pb - pa)
        x = torch.minimum(torch.maximum(ndtri(u.clamp(1e-300, 1 - 1e-16)), a), b)
        lo, hi = self._bounds(self.tau, torch.zeros_like(f))  # the interval itself: f + x may round out of it
        return torch.minimum(torch.maximum(f + torch.where(flip, -x, x), lo), hi)

    def expected(self, f: torch.Tensor) -> torch.Tensor:
        """The expected rating of each latent mean, under the current cutpoints."""
        return expected(self.levels, self.tau, f)

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        return ({"step": self.step, "accepted": self.accepted, "tried": self.tried},
                {"probit.tau": self.tau.detach().cpu().clone()})

    def load_state(self, scalars: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.step, self.accepted, self.tried = scalars["step"], scalars["accepted"], scalars["tried"]
        self.tau = tensors["probit.tau"].to(self.levels.device, copy=True)
