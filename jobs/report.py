"""spark-submit entry point: the report job (gold.report_* tables and the HTML report).

    spark-submit jobs/report.py --conf conf --env cluster [--as-of YYYY-MM-DD] [--set key=value ...]
"""

from cdp_spark.jobs_main import main

if __name__ == "__main__":
    main("report")
