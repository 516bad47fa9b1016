"""spark-submit entry point: the export job (published gold versions as files with COPY manifests).

    spark-submit jobs/export.py --conf conf --env cluster [--as-of YYYY-MM-DD] [--set key=value ...]
"""

from cdp_spark.jobs_main import main

if __name__ == "__main__":
    main("export")
