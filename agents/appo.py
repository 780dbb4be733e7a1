"""APPO: asynchronous PPO over V-trace targets (Sample Factory, Petrenko et al. 2020; RLlib's APPO).

Fragments may come from a behaviour policy k versions behind the learner. The learner
re-evaluates them with the current network (log-probs and values), builds V-trace value
targets and rho-clipped advantages (Espeholt et al. 2018), and optimizes PPO's clipped
surrogate on the ratio pi_current / mu_behaviour. The loss is PPO's (see ppo.py); only
the targets differ.

With `vtrace: false` the advantages are GAE over the behaviour (stale) values instead:
nothing corrects for the lag except the ratio clip, which is what V-trace fixes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from rlfarm.agents.advantages import fold_episode_ends, gae, vtrace
from rlfarm.agents.batch import Batch
from rlfarm.agents.fragment import Fragment
from rlfarm.agents.ppo import PPOLearner


class APPOLearner(PPOLearner):
    algo_name = "appo"

    def targets(self, batch: Batch, obs: torch.Tensor):
        cfg = self.algo_cfg
        steps, envs = batch.shape
        with torch.no_grad():
            flat_obs = obs[:-1].reshape(steps * envs, *obs.shape[2:])
            flat_actions = batch.actions.reshape(steps * envs, *batch.actions.shape[2:])
            target_logp, _, values = self.model.evaluate(flat_obs, flat_actions)
            target_logp, values = target_logp.reshape(steps, envs), values.reshape(steps, envs)
            bootstrap = self.model.value(obs[-1])
        rewards, discounts = fold_episode_ends(batch.rewards, batch.terminated, batch.truncated,
                                               batch.final_values, cfg.gamma)
        if not cfg.vtrace:
            advantages, returns = gae(rewards, batch.values, bootstrap, discounts, cfg.gae_lambda)
            return advantages, returns, batch.values
        value_targets, advantages = vtrace(batch.logp, target_logp, rewards, values, bootstrap, discounts,
                                           rho_bar=cfg.rho_bar, c_bar=cfg.c_bar, lam=cfg.gae_lambda)
        return advantages, value_targets, values

    def extra_metrics(self, fragments: Sequence[Fragment]) -> dict[str, float]:
        # self.version was already advanced; the lag is measured against the version that updated.
        lags = np.array([self.version - 1 - f.policy_version for f in fragments], np.float64)
        return {"perf/policy_lag_mean": float(lags.mean()), "perf/policy_lag_max": float(lags.max())}
