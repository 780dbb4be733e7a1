"""PPO (Schulman et al. 2017) as in CleanRL's ppo.py: GAE advantages, clipped surrogate,
(optionally clipped) value loss, entropy bonus, global grad-norm clip, minibatch epochs.

update(fragments):
  1. the whole batch goes to the device in one copy; obs are normalized with frozen stats;
  2. `targets` computes advantages and value targets (GAE here; APPO overrides it);
  3. `optimize` runs epochs x minibatches (index permutations on the device; on CUDA each
     minibatch step is one replayed CUDA graph, see cuda_graph.py); with `target_kl` the
     remaining epochs are skipped once an epoch's mean approx KL exceeds it;
  4. the batch's obs moments join the normalizer and the version goes up by one; an update
     whose losses or gradient norm are NaN/Inf is rolled back instead (LearnerBase.keep_if_finite).
"""
from __future__ import annotations

import time
from typing import Sequence

import torch

from rlfarm.agents import cuda_graph
from rlfarm.agents.advantages import fold_episode_ends, gae
from rlfarm.agents.batch import Batch
from rlfarm.agents.fragment import Fragment
from rlfarm.agents.learner import LearnerBase


class PPOLearner(LearnerBase):
    algo_name = "ppo"

    def update(self, fragments: Sequence[Fragment]) -> dict[str, float]:
        """One learner update on `fragments` (equal T); returns the metrics dict."""
        start = time.perf_counter()
        self.check_fragments(fragments)
        self.anneal()
        batch = self.stage(fragments)
        steps, envs = batch.shape
        obs = self.normalize(batch.obs)
        advantages, returns, old_values = self.targets(batch, obs)

        def flat(x: torch.Tensor) -> torch.Tensor:  # [T, N, ...] -> [T*N, ...]
            return x.reshape(steps * envs, *x.shape[2:])

        snapshot = self.snapshot()
        losses, epochs_run = self.optimize(flat(obs[:-1]), flat(batch.actions), flat(batch.logp),
                               flat(advantages), flat(returns), flat(old_values))
        summary = torch.cat([losses, explained_variance(old_values, returns).reshape(1)]).tolist()  # one device sync
        metrics = dict(zip(LOSS_KEYS + ("losses/explained_variance",), summary))
        self.env_steps_consumed += steps * envs
        if self.keep_if_finite(snapshot, summary[:len(LOSS_KEYS)]):  # else: weights rolled back
            self.merge_obs_stats(batch.obs[:-1])
            self.version += 1
        metrics["perf/skipped_updates"] = float(self.skipped_updates)
        elapsed = time.perf_counter() - start
        metrics["perf/learner_update_ms"] = 1000.0 * elapsed
        metrics["perf/learner_samples_per_s"] = steps * envs / elapsed
        metrics["learner/lr"] = self.optimizer.param_groups[0]["lr"]
        metrics["learner/clip_range"] = self.clip_value
        metrics["learner/epochs"] = float(epochs_run)
        metrics.update(self.extra_metrics(fragments))
        return metrics

    def targets(self, batch: Batch, obs: torch.Tensor):
        """(advantages, value targets, values to compare against) [T, N], from GAE(lambda)
        over the behaviour values (on-policy: they are this version's values)."""
        cfg = self.algo_cfg
        with torch.no_grad():
            bootstrap = self.model.value(obs[-1])
        rewards, discounts = fold_episode_ends(batch.rewards, batch.terminated, batch.truncated,
                                               batch.final_values, cfg.gamma)
        advantages, returns = gae(rewards, batch.values, bootstrap, discounts, cfg.gae_lambda)
        return advantages, returns, batch.values

    def extra_metrics(self, fragments: Sequence[Fragment]) -> dict[str, float]:
        return {}

    def optimize(self, obs, actions, old_logp, advantages, returns, old_values) -> tuple[torch.Tensor, int]:
        """Epochs x minibatches of the clipped-surrogate loss; returns (the mean of LOSS_KEYS,
        epochs run). With `target_kl`, each epoch's mean approx KL is read back (one sync per
        epoch) and the rest are skipped once it exceeds target_kl (CleanRL's early stop)."""
        cfg = self.algo_cfg
        inputs = (obs, actions, old_logp, advantages, returns, old_values)
        num_samples = obs.shape[0]
        minibatch_size = -(-num_samples // cfg.minibatches)
        steps_per_epoch = -(-num_samples // minibatch_size)
        graphed = self.graphed_step(inputs, minibatch_size)
        sums = torch.zeros(len(LOSS_KEYS), device=self.device)
        count = 0
        for epoch in range(cfg.epochs):
            epoch_kl = torch.zeros((), device=self.device)
            order = torch.randperm(num_samples, device=self.device, generator=self.generator)
            for index in order.split(minibatch_size):
                if graphed is not None:
                    stats = graphed(index, inputs)
                    self.optimizer.steps += 1  # the graph's Adam counts on the device
                else:
                    stats = self.minibatch_step(*(x[index] for x in inputs))
                sums += stats
                epoch_kl += stats[KL_INDEX]
                count += 1
            if cfg.target_kl is not None and epoch_kl.item() / steps_per_epoch > cfg.target_kl:
                return sums / count, epoch + 1
        return sums / count, cfg.epochs

    def graphed_step(self, inputs, minibatch_size: int):
        """The minibatch step as a CUDA graph (agents/cuda_graph.py), or None to run eagerly:
        off CUDA, with `algo.cuda_graphs: false`, with data-parallel learners (their gradient
        all-reduce stays eager), and for batches that do not split into equal minibatches."""
        if (self.device.type not in cuda_graph.CAPTURE_DEVICE_TYPES or not self.algo_cfg.cuda_graphs
                or self.grad_sync is not None or inputs[0].shape[0] % minibatch_size):
            return None
        if self.graphs is None:
            self.graphs = cuda_graph.GraphCache()
        examples = [x[:minibatch_size] for x in inputs]
        state = list(self.model.parameters()) + self.optimizer.state_tensors()
        self.optimizer.load_device_scalars()
        graphed = self.graphs.get(lambda *minibatch: self.minibatch_step(*minibatch, device_adam=True),
                                  examples, state)
        self.optimizer.load_device_scalars()  # again: a capture's warm-up steps counted on the device
        return graphed

    def minibatch_step(self, obs, actions, old_logp, advantages, returns, old_values,
                       device_adam: bool = False) -> torch.Tensor:
        """One SGD step on one minibatch; returns the LOSS_KEYS stats as one tensor.
        `device_adam` takes Adam's step without host scalars, as a CUDA graph needs."""
        cfg = self.algo_cfg
        new_logp, entropy, new_values = self.model.evaluate(obs, actions)
        log_ratio = new_logp - old_logp
        ratio = log_ratio.exp()
        if cfg.normalize_adv and advantages.numel() > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        clip = self.clip_range
        policy_loss = torch.max(-advantages * ratio, -advantages * ratio.clamp(1 - clip, 1 + clip)).mean()
        if cfg.clip_vloss:
            clipped = old_values + (new_values - old_values).clamp(-clip, clip)
            value_loss = 0.5 * torch.max((new_values - returns) ** 2, (clipped - returns) ** 2).mean()
        else:
            value_loss = 0.5 * ((new_values - returns) ** 2).mean()
        entropy_mean = entropy.mean()
        loss = policy_loss - cfg.ent_coef * entropy_mean + cfg.vf_coef * value_loss
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_sync is not None:
            self.grad_sync(self.optimizer.params)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
        if device_adam:
            self.optimizer.step_on_device()
        else:
            self.optimizer.step()
        with torch.no_grad():
            approx_kl = ((ratio - 1) - log_ratio).mean()  # the k3 estimator (Schulman's blog)
            clip_fraction = ((ratio - 1).abs() > clip).float().mean()
            return torch.stack([policy_loss.detach(), value_loss.detach(), entropy_mean.detach(),
                                approx_kl, clip_fraction, grad_norm.detach()])


LOSS_KEYS = ("losses/policy", "losses/value", "losses/entropy", "losses/approx_kl",
             "losses/clip_fraction", "losses/grad_norm")
KL_INDEX = LOSS_KEYS.index("losses/approx_kl")


def explained_variance(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - Var[target - predicted] / Var[target] as a 0-d tensor on their device (nan when
    the target is constant); a tensor, so the caller syncs once for all metrics."""
    var_target = target.var()
    ratio = (target - predicted).var() / var_target
    return torch.where(var_target > 0, 1 - ratio, torch.full_like(ratio, float("nan")))
