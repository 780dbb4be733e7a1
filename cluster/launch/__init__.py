"""Launchers and operations around the farm, apart from its data path: Ray Jobs (jobs.py),
SLURM's batch script and its template (slurm.py, slurm/), and Ray Tune trials (tune.py)."""
