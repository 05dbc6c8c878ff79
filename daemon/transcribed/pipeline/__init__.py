"""The job pipeline: one file's state machine (job.py) and the workers that run it (pool.py)."""
