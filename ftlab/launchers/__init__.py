"""ftlab's Hydra launchers. `slurm.SlurmLauncher` (conf/hydra/launcher/slurm.yaml) is submitit's,
plus what a user on a real cluster needs before and after submitting: the request fitted to and
checked against the partition (`partition.py`), a dry run (`plan.py`), and jobs that SLURM ended
without a result (cancelled, out of memory, node failure) reported as failed runs instead of a
traceback that drops the other jobs of the sweep."""
