"""N2N's two recurrent policies, their REINFORCE update, and their files.

* :class:`RemovalPolicy` (Ashok et al. 2018, Fig. 2a): a bidirectional LSTM reads every removable block's
  descriptor and outputs, per block, the probability of *keeping* it. A block's fate depends on what lies
  before and after it, hence both directions.
* :class:`ShrinkPolicy` (Fig. 2b): a unidirectional LSTM walks the remaining layers (channel groups) in
  order; each step reads the layer's descriptor and the previous action and picks a keep fraction from a
  discrete set (how much the previous layer shrank changes what this one receives).

Both are trained with REINFORCE: the gradient of ``sum_t log pi(a_t) * (R - b)`` averaged over the
``m`` students of one update, ``b`` an exponential moving average of earlier rewards (the paper's
variance-reducing baseline). Actions are sampled from a private ``torch.Generator`` (never the global
one, which each student's fine-tune reseeds), and log-probabilities are recomputed from the stored
actions at update time: the weights do not change within an update, so this equals the sampling-time
value, and a resumed search needs only the actions and rewards of the pending students.

``N2NAgent.tensors()`` / ``meta()`` flatten both policies, their Adam states, the generator and the
baseline into safetensors tensors + JSON; nothing is pickled.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn


class RemovalPolicy(nn.Module):
    """Bidirectional LSTM over block descriptors -> one keep logit per block."""

    def __init__(self, features: int, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(features, hidden, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * hidden, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, 0.0)  # keep probability 0.5 for every block at the start

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.lstm(x.unsqueeze(0))
        return self.head(out[0]).squeeze(-1)

    def sample(self, x: Tensor, gen: torch.Generator, greedy: bool = False) -> list[int]:
        """1 = keep, 0 = remove, per block."""
        with torch.no_grad():
            p = torch.sigmoid(self(x))
        if greedy:
            return [int(v) for v in (p >= 0.5)]
        return [int(v) for v in torch.bernoulli(p, generator=gen)]

    def log_prob(self, x: Tensor, actions: list[int]) -> Tensor:
        logits = self(x)
        a = torch.tensor(actions, dtype=logits.dtype)
        return -nn.functional.binary_cross_entropy_with_logits(logits, a, reduction="sum")


class ShrinkPolicy(nn.Module):
    """LSTM cell over layer descriptors plus the previous action (one-hot) -> a distribution over the
    ``n_actions`` keep fractions."""

    def __init__(self, features: int, hidden: int, n_actions: int) -> None:
        super().__init__()
        self.n_actions, self.hidden = n_actions, hidden
        self.cell = nn.LSTMCell(features + n_actions, hidden)
        self.head = nn.Linear(hidden, n_actions)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)  # uniform over the fractions at the start

    def _logits(self, x: Tensor, actions: list[int] | None, gen: torch.Generator | None, greedy: bool):
        h = c = torch.zeros(1, self.hidden)
        prev = torch.zeros(1, self.n_actions)
        logits, chosen = [], []
        for t in range(x.shape[0]):
            h, c = self.cell(torch.cat([x[t : t + 1], prev], dim=1), (h, c))
            step = self.head(h)[0]
            logits.append(step)
            if actions is not None:
                a = actions[t]
            elif greedy:
                a = int(torch.argmax(step))
            else:
                a = int(torch.multinomial(torch.softmax(step.detach(), 0), 1, generator=gen))
            chosen.append(a)
            prev = torch.zeros(1, self.n_actions)
            prev[0, a] = 1.0
        return logits, chosen

    def sample(self, x: Tensor, gen: torch.Generator, greedy: bool = False) -> list[int]:
        """An index into the keep fractions, per layer."""
        with torch.no_grad():
            return self._logits(x, None, gen, greedy)[1]

    def log_prob(self, x: Tensor, actions: list[int]) -> Tensor:
        logits, _ = self._logits(x, actions, None, False)
        if not logits:
            return torch.zeros(())
        stacked = torch.log_softmax(torch.stack(logits), dim=1)
        return stacked[torch.arange(len(actions)), torch.tensor(actions)].sum()


class Reinforce:
    """REINFORCE with an exponential-moving-average baseline for one policy."""

    def __init__(self, policy: nn.Module, lr: float, decay: float) -> None:
        self.policy, self.decay = policy, decay
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
        self.baseline: float | None = None
        self.updates = 0

    def update(self, x: Tensor, rollouts: list[tuple[list[int], float]]) -> dict[str, float]:
        """One gradient step from ``(actions, reward)`` pairs sampled by the current weights."""
        rewards = [r for _, r in rollouts]
        base = self.baseline if self.baseline is not None else sum(rewards) / len(rewards)
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.zeros(())
        for actions, reward in rollouts:
            loss = loss - self.policy.log_prob(x, actions) * (reward - base)
        loss = loss / len(rollouts)
        loss.backward()
        self.optimizer.step()
        for r in rewards:  # the moving average of every reward seen so far, in order
            self.baseline = r if self.baseline is None else self.decay * self.baseline + (1 - self.decay) * r
        self.updates += 1
        return {"baseline_used": float(base), "loss": float(loss.detach())}


class N2NAgent:
    """Both policies, their optimizers and the action generator."""

    def __init__(
        self,
        block_features: int,
        group_features: int,
        n_actions: int,
        hidden: int,
        lr: float,
        decay: float,
        seed: int,
    ) -> None:
        torch_state = torch.random.get_rng_state()
        torch.manual_seed(seed)  # the policies' initial weights depend on the seed only
        self.removal = RemovalPolicy(block_features, hidden)
        self.shrink = ShrinkPolicy(group_features, hidden, n_actions)
        torch.random.set_rng_state(torch_state)
        self.learners = {
            "removal": Reinforce(self.removal, lr, decay),
            "shrink": Reinforce(self.shrink, lr, decay),
        }
        self.gen = torch.Generator().manual_seed(seed)

    # -- files --------------------------------------------------------------------------------------
    def tensors(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {"gen": self.gen.get_state().clone()}
        for name, learner in self.learners.items():
            for k, v in learner.policy.state_dict().items():
                out[f"{name}.net.{k}"] = v.detach().clone().contiguous()
            for idx, slot in learner.optimizer.state_dict()["state"].items():
                for k, v in slot.items():
                    out[f"{name}.opt.{idx}.{k}"] = torch.as_tensor(v).clone().contiguous()
        return out

    def meta(self) -> dict[str, Any]:
        return {
            name: {"baseline": learner.baseline, "updates": learner.updates}
            for name, learner in self.learners.items()
        }

    def restore(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        self.gen.set_state(tensors["gen"].clone())
        for name, learner in self.learners.items():
            net = {k[len(name) + 5 :]: v for k, v in tensors.items() if k.startswith(f"{name}.net.")}
            learner.policy.load_state_dict(net)
            state: dict[int, dict[str, Tensor]] = {}
            for k, v in tensors.items():
                if k.startswith(f"{name}.opt."):
                    idx, field = k[len(name) + 5 :].split(".", 1)
                    state.setdefault(int(idx), {})[field] = v.clone()
            saved = learner.optimizer.state_dict()
            learner.optimizer.load_state_dict({"state": state, "param_groups": saved["param_groups"]})
            learner.baseline = meta[name]["baseline"]
            learner.updates = int(meta[name]["updates"])

    def weights(self) -> dict[str, Tensor]:
        """The two policies' weights only (a transferable policy)."""
        return {
            f"{name}.{k}": v.detach().clone().contiguous()
            for name, learner in self.learners.items()
            for k, v in learner.policy.state_dict().items()
        }

    def load_weights(self, tensors: dict[str, Tensor]) -> None:
        for name, learner in self.learners.items():
            learner.policy.load_state_dict(
                {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
            )
