"""cdp-spark: an open-source Customer Data Platform on Spark and Delta."""

__version__ = "0.1.0"
