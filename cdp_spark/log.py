"""Readable progress logs on stderr; third-party chatter (py4j, Great Expectations, AWS clients, matplotlib)
kept to warnings unless ``-v``."""

from __future__ import annotations

import logging
import sys


def configure(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        force=True)
    if not verbose:
        quiet(*NOISY)


NOISY = ("py4j", "great_expectations", "urllib3", "botocore", "boto3", "matplotlib", "PIL")


def quiet(*packages: str) -> None:
    """The packages' loggers, and any child logger that set its own lower level (Great Expectations sets
    some to INFO when it is imported), at WARNING."""
    for name in packages:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name, logger in list(logging.root.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.startswith(tuple(f"{p}." for p in packages)) \
                and logging.NOTSET < logger.level < logging.WARNING:
            logger.setLevel(logging.NOTSET)  # inherit the package's WARNING
