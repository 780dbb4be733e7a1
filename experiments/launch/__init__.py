"""Sending work elsewhere: `rlfarm submit` and `rlfarm jobs` (Ray Jobs), `rlfarm slurm`
(sbatch scripts), `rlfarm sweep` (Ray Tune). The Ray-facing halves live in cluster/launch/."""
