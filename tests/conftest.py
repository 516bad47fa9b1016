"""One Spark session for the whole run (a session costs ~7 s here), tuned like splink's test setup:
one shuffle partition, no UI, small driver, the JIT's first tier only."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest
from pyspark.sql import SparkSession

from cdp_spark.config import SparkSettings
from cdp_spark.session import LOCAL_CONF, build_session

POSTGRES_JAR = "/usr/share/java/postgresql.jar"
# delta-spark and hadoop-aws as `make jars` fetched them (jvm/pom.xml); absent jars leave the spark-engine
# and s3a tests skipped
# for the installed pyspark's minor version (`make jars SPARK_MINOR=4.0` for a pyspark 4.0 environment)
SPARK_MINOR = ".".join(pyspark.__version__.split(".")[:2])
JVM_JARS = [str(Path(__file__).resolve().parents[1] / "build" / "jars" / f"spark-{SPARK_MINOR}" / group / "*.jar")
            for group in ("delta", "s3a")]
HASH_KEY = "cdp-test-hash-key"  # the tests' HMAC key (privacy.hash_key_env)
os.environ.setdefault("CDP_HASH_KEY", HASH_KEY)
# moto's fake credentials, in the environment before the JVM starts, as S3A reads them from there
for _key, _value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                     "AWS_DEFAULT_REGION": "us-east-1"}.items():
    os.environ.setdefault(_key, _value)
REPO_ROOT = Path(__file__).resolve().parents[1]
# pytest-xdist's workers run as `python -c`: a __main__ with neither __spec__ nor __file__, which
# pyspark.sql.connect (imported by Great Expectations) takes for its own doctest run and exits on; name it
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkSession]:
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    checkpoint_dir = tempfile.mkdtemp(prefix="cdp-test-ckpt-")
    settings = SparkSettings(
        master="local[2]",
        app_name="cdp-spark-tests",
        shuffle_partitions=1,
        driver_memory="3g",
        jars=[POSTGRES_JAR, *JVM_JARS],
        conf={"spark.sql.adaptive.enabled": "false", "spark.sql.autoBroadcastJoinThreshold": "-1",
              # small data through many code paths: the JIT's first tier alone costs less than the optimising
              # compiler's work on two cores (test_ingest 106 -> 92 s, test_rfm + test_scores 62 -> 50 s)
              "spark.driver.extraJavaOptions": " ".join(
                  [LOCAL_CONF["spark.driver.extraJavaOptions"], "-XX:TieredStopAtLevel=1"])},
    )
    session = build_session(settings)
    session.sparkContext.setCheckpointDir(checkpoint_dir)
    yield session
    session.stop()
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


@pytest.fixture()
def lake(tmp_path: Path) -> Path:
    root = tmp_path / "lake"
    root.mkdir()
    return root


@pytest.fixture(scope="session")
def postgres():
    from tests.integration.postgres import PostgresUnavailable, start_postgres

    try:
        server = start_postgres()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL could not start: {exc}")
    yield server
    server.stop()


@pytest.fixture()
def cfg_factory(tmp_path: Path):
    """Builds a CdpConfig from the project's conf/ with the data dir under tmp_path. The suite's session
    has the delta-spark jars when `make jars` fetched them, so ``auto`` would pick the spark engine: tests
    run on the embedded default's rs engine unless they override ``storage.engine`` (the contract suite
    runs both engines)."""
    from cdp_spark.config import load_config

    def build(*overrides: str, env: str = "local", data_dir: Path | None = None):
        return load_config(REPO_ROOT / "conf", env, ("storage.engine=rs", *overrides),
                           data_dir=str(data_dir or tmp_path / "data"))

    return build


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server on 127.0.0.1 (the fake credentials are in the environment from the start)."""
    from moto.server import ThreadedMotoServer

    from tests.integration.s3 import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture()
def fault_proxy(s3_server):
    from tests.integration.s3 import FaultProxy

    proxy = FaultProxy(int(s3_server.rsplit(":", 1)[1])).start()
    yield proxy
    proxy.stop()


# The packaging test builds `make dist` and runs the whole pipeline under spark-submit on the artefacts: minutes
# of child processes. In one process, that work starts on a thread at collection (tests/integration/
# packed_run.py) and the test runs last, so the build and the run overlap the rest of the suite. On pytest-xdist
# workers (scripts/run_tests.sh) every worker collects every test but one runs it: the test goes first, and the
# worker that gets it starts the work and waits for it while the other worker goes on with the suite.
DIST_TEST = "tests/integration/test_dist.py"
PACKED_RUN = pytest.StashKey[object]()


def on_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    dist_items = [item for item in items if item.nodeid.startswith(DIST_TEST)]
    others = [item for item in items if item not in dist_items]
    items[:] = dist_items + others if on_xdist_worker(config) else others + dist_items


def pytest_collection_finish(session: pytest.Session) -> None:
    """Starts the packed run once the selection is final (``-k`` and ``-m`` applied), if it kept the test and
    this process runs every test it collected."""
    if not on_xdist_worker(session.config) and any(item.nodeid.startswith(DIST_TEST) for item in session.items):
        start_packed_run(session.config)


def start_packed_run(config: pytest.Config) -> None:
    from tests.integration.packed_run import PackedPipeline

    packed = PackedPipeline()
    packed.start()
    config.stash[PACKED_RUN] = packed


def pytest_sessionfinish(session: pytest.Session) -> None:
    packed = session.config.stash.get(PACKED_RUN, None)
    if packed is not None:
        packed.stop()  # a no-op wait when the test consumed it; else ends the build or run and cleans up


@pytest.fixture(scope="session")
def packed_run(request: pytest.FixtureRequest):
    """The finished `make dist` + spark-submit run (:class:`tests.integration.packed_run.PackedRun`); started
    here when collection did not start it (an xdist worker)."""
    if PACKED_RUN not in request.config.stash:
        start_packed_run(request.config)
    packed = request.config.stash[PACKED_RUN]
    packed.join(timeout=2400)
    result = packed.result
    if packed.is_alive() or result.error or result.build_returncode != 0:
        pytest.fail(f"make dist or the packed run did not finish: {result.error or ''}\n"
                    f"{result.build_log.read_text()[-4000:] if result.build_log.exists() else ''}")
    yield result
