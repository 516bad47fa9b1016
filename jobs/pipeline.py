"""spark-submit entry point: the pipeline job.

    spark-submit jobs/pipeline.py --conf conf --env cluster [--as-of YYYY-MM-DD] [--set key=value ...]
"""

from cdp_spark.jobs_main import main

if __name__ == "__main__":
    main("pipeline")
