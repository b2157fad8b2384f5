"""The main job, stage by stage, resumable."""

from netsculpt.pipeline.job import CompressJob, print_summary, run_job

__all__ = ["CompressJob", "print_summary", "run_job"]
