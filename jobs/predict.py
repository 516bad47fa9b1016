"""spark-submit entry point: the predict job (CLV, personas, recommendations).

    spark-submit jobs/predict.py --conf conf --env cluster [--as-of YYYY-MM-DD] [--set key=value ...]
"""

from cdp_spark.jobs_main import main

if __name__ == "__main__":
    main("predict")
