"""spark-submit entry point: the sync job.

    spark-submit jobs/sync.py --conf conf --env cluster [--as-of YYYY-MM-DD] [--set key=value ...]
"""

from cdp_spark.jobs_main import main

if __name__ == "__main__":
    main("sync")
