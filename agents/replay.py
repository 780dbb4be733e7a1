"""The replay buffer of the off-policy learners (SAC, DQN): a ring of transitions on the device.

A whole Fragment goes in as one block. `fragment_transitions` turns its [T, N] arrays into
flat transitions with array operations only (a loop over the n of an n-step return, never
over steps or copies), and `ReplayBuffer.add` copies them into preallocated contiguous
tensors on the learner's device with at most two slice copies (the ring may wrap).

Each stored transition is (obs, action, reward, next_obs, discount), so that every learner
target reads  reward + discount * V(next_obs):

- reward is the n-step return  sum_{k<m} gamma^k r_{t+k}, the window of m <= n steps ending
  early at an episode's end or at the fragment's last row (a window cut short is an m-step
  target, bootstrapped with gamma^m: the next fragment of the same copy is not at hand);
- discount is gamma^m where the window ends on a live or truncated state, and 0 where it
  ends on a termination: termination and truncation are kept apart;
- next_obs is the state the window ends on. At a truncation it is that episode's final
  observation (Fragment.final_obs under the same_step autoreset, obs[t+1] under next_step),
  never the next episode's first one. A truncation whose final obs is unknown (an env reset
  after a bad state) cannot bootstrap, and its transition is left out.

Under next_step autoreset the step after an episode's end only resets the env; it is not a
transition and is left out too (docs/interfaces.md, agents/fragment.py).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import torch

from rlfarm.agents.config import replay_bytes  # noqa: F401  (re-exported: torch-free, for the CLI's capacity check)
from rlfarm.agents.fragment import Fragment

FIELDS = ("obs", "actions", "rewards", "next_obs", "discounts")




def fragment_transitions(fragment: Fragment, gamma: float, n_step: int = 1) -> dict[str, np.ndarray]:
    """The fragment's transitions as flat arrays (see the module docstring), rows [M]:
    obs [M, *obs], actions [M, *act], rewards float32 [M] (n-step returns), next_obs [M, *obs],
    discounts float32 [M] (gamma^m, 0 after a termination)."""
    steps, envs = fragment.rewards.shape
    obs_shape = fragment.obs.shape[2:]
    terminated, truncated = fragment.terminated, fragment.truncated
    done = terminated | truncated
    next_obs = np.array(fragment.obs[1:], np.float32)  # [T, N, *obs], the one-step successors
    valid = np.ones((steps, envs), bool)
    if fragment.autoreset_mode == "next_step":
        reset_step = np.zeros((steps, envs), bool)  # obs[t+1] at an end is the final obs already
        reset_step[1:] = done[:-1]
        if fragment.done_before is not None:
            reset_step[0] = fragment.done_before
        valid &= ~reset_step
    else:
        known_final = np.zeros(steps * envs, bool)
        if fragment.final_obs is not None and len(fragment.final_index):
            next_obs.reshape(steps * envs, *obs_shape)[fragment.final_index] = fragment.final_obs
            known_final[fragment.final_index] = True
        valid &= ~(truncated & ~terminated & ~known_final.reshape(steps, envs))

    rewards = np.array(fragment.rewards, np.float32)
    discounts = np.full((steps, envs), gamma, np.float32)
    end_row = np.broadcast_to(np.arange(steps)[:, None], (steps, envs)).copy()
    ends_terminated = terminated.copy()
    stopped = done | ~valid  # the window of row t is closed
    for k in range(1, n_step):
        extend = np.zeros((steps, envs), bool)  # row t takes in step t + k
        extend[:steps - k] = ~stopped[:steps - k] & valid[k:]
        if not extend.any():
            break
        rows = extend[:steps - k]
        rewards[:steps - k] += np.where(rows, gamma**k * fragment.rewards[k:], 0.0).astype(np.float32)
        discounts[extend] = gamma ** (k + 1)
        end_row += extend  # the window now ends at row t + k
        ends_terminated[:steps - k] = np.where(rows, terminated[k:], ends_terminated[:steps - k])
        stopped |= ~extend
        stopped[:steps - k] |= rows & done[k:]
    discounts[ends_terminated] = 0.0
    if n_step > 1:
        next_obs = next_obs[end_row, np.arange(envs)[None, :]]
    return {"obs": fragment.obs[:-1][valid], "actions": fragment.actions[valid], "rewards": rewards[valid],
            "next_obs": next_obs[valid], "discounts": discounts[valid]}


class ReplaySample(NamedTuple):
    """A minibatch of transitions on the device: obs [B, *obs], actions [B, *act],
    rewards [B], next_obs [B, *obs], discounts [B]."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    discounts: torch.Tensor


class ReplayBuffer:
    """A ring of `capacity` transitions in preallocated tensors on `device`; the oldest go first."""

    def __init__(self, capacity: int, obs_shape: Sequence[int], action_shape: Sequence[int],
                 action_dtype: torch.dtype, device: torch.device | str, gamma: float, n_step: int = 1):
        self.capacity, self.gamma, self.n_step = int(capacity), float(gamma), int(n_step)
        self.device = torch.device(device)
        obs_shape, action_shape = tuple(obs_shape), tuple(action_shape)
        cap = self.capacity
        self.tensors = {
            "obs": torch.zeros((cap, *obs_shape), dtype=torch.float32, device=self.device),
            "actions": torch.zeros((cap, *action_shape), dtype=action_dtype, device=self.device),
            "rewards": torch.zeros(cap, dtype=torch.float32, device=self.device),
            "next_obs": torch.zeros((cap, *obs_shape), dtype=torch.float32, device=self.device),
            "discounts": torch.zeros(cap, dtype=torch.float32, device=self.device),
        }
        self.position = 0
        """Where the next transition goes."""
        self.size = 0
        """Transitions held (at most capacity)."""
        self.added = 0
        """Transitions ever added (cumulative)."""

    @property
    def nbytes(self) -> int:
        return int(sum(t.numel() * t.element_size() for t in self.tensors.values()))

    def add(self, fragment: Fragment) -> int:
        """Append the fragment's transitions as one block; returns how many went in."""
        rows = fragment_transitions(fragment, self.gamma, self.n_step)
        count = len(rows["rewards"])
        keep = min(count, self.capacity)  # a block larger than the ring keeps its newest rows
        first = min(keep, self.capacity - self.position)
        for name, tensor in self.tensors.items():
            block = torch.from_numpy(np.ascontiguousarray(rows[name][count - keep:]))
            block = block.to(self.device, dtype=tensor.dtype, non_blocking=True)
            tensor[self.position:self.position + first] = block[:first]
            tensor[:keep - first] = block[first:]
        self.position = (self.position + keep) % self.capacity
        self.size = min(self.size + keep, self.capacity)
        self.added += count
        return count

    def sample(self, batch_size: int, generator: torch.Generator) -> ReplaySample:
        """`batch_size` transitions drawn uniformly with replacement (generator on the device)."""
        index = torch.randint(self.size, (int(batch_size),), generator=generator, device=self.device)
        return ReplaySample(*(self.tensors[name][index] for name in FIELDS))

    def state_dict(self) -> dict:
        """The held transitions (on the CPU) and the counters, for a checkpoint."""
        return {"capacity": self.capacity, "position": self.position, "size": self.size, "added": self.added,
                **{name: tensor[:self.size].detach().cpu().clone() for name, tensor in self.tensors.items()}}

    def load_state_dict(self, state: dict) -> None:
        if int(state["capacity"]) != self.capacity:
            raise ValueError(f"replay capacity differs: checkpoint {state['capacity']}, this run {self.capacity}")
        for name, tensor in self.tensors.items():
            if tuple(state[name].shape[1:]) != tuple(tensor.shape[1:]):
                raise ValueError(f"replay {name} shape differs: checkpoint {list(state[name].shape[1:])}, "
                                 f"this run {list(tensor.shape[1:])}")
        size = int(state["size"])
        for name, tensor in self.tensors.items():
            tensor[:size] = state[name].to(self.device, dtype=tensor.dtype)
        self.position, self.size, self.added = int(state["position"]), size, int(state["added"])
