"""cdp-spark: an open-source Customer Data Platform on Spark and Delta."""

import importlib.util

__version__ = "0.1.0"

if importlib.util.find_spec("pyspark") is None:  # the wheel leaves Spark to the runtime (docs/deployment.md)
    raise ModuleNotFoundError("cdp-spark needs pyspark: pip install 'cdp-spark[local]' for local mode; on a "
                              "cluster (Databricks, EMR, spark-submit) the Spark runtime provides it")
