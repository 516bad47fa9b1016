"""Readable progress logs on stderr; py4j and GE chatter kept quiet."""

from __future__ import annotations

import logging
import sys


def configure(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        force=True)
    for noisy in ("py4j", "great_expectations", "urllib3", "botocore", "boto3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
