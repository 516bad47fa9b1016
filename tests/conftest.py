"""One Spark session for the whole run (a session costs ~7 s here), tuned like splink's test setup:
one shuffle partition, no UI, small driver, the JIT's first tier only, no generated code."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pyspark
import pytest
from pyspark.sql import SparkSession

from cdp_spark.config import SparkSettings
from cdp_spark.session import CODEGEN_FACTORY_MODE, LOCAL_CONF, build_session
from tests.integration.packed_run import PackedPipeline, PackedRun

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


# The suite's SQL settings (see the session below). A test that runs the product's entry points in this process
# builds its session with the product's settings, which applies them to this shared session; they are set back
# after every test, so the tests after it run as the suite intends and not as whichever test ran before.
SUITE_SQL_CONF = {"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false",
                  "spark.sql.autoBroadcastJoinThreshold": "-1",
                  # no generated code, as Spark's own tests can run: on small data, generating Java source
                  # (regex passes over it) and compiling it cost more than the rows (a fifth of the driver JVM's
                  # samples in a flight recording of the demo pipeline; test_ingest + both end-to-end tests
                  # 582 -> 476 s). This mode also turns whole-stage code generation off (Spark's
                  # CollapseCodegenStages checks it); the packaging test runs the pipeline with the product's
                  # settings, and the tests that need generated code (test_session.py) set the mode for
                  # themselves.
                  CODEGEN_FACTORY_MODE: "NO_CODEGEN"}


def restore_suite_sql_conf(session: SparkSession) -> None:
    """Sets ``SUITE_SQL_CONF`` on the session where a test changed it."""
    for key, value in SUITE_SQL_CONF.items():
        if session.conf.get(key, None) != value:
            session.conf.set(key, value)


@pytest.fixture(autouse=True)
def _suite_sql_settings() -> Iterator[None]:
    yield
    session = SparkSession.getActiveSession()
    if session is not None:
        restore_suite_sql_conf(session)


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
        # no class-data-sharing archive in the user's cache (each worker would dump ~200 MB at exit on
        # every new checkout); tests/integration/test_class_archive_jvm.py runs it in a temporary folder
        class_data_sharing=False,
        conf={**SUITE_SQL_CONF,
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
# of child processes (niced), started as soon as the selection is known and overlapping the rest of the suite
# (tests/integration/packed_run.py); the test runs last and checks what the run wrote. In one process the work
# runs on a thread of the test process. On pytest-xdist workers (scripts/run_tests.sh) it runs on a thread of the
# controller, started when a worker reports that it collected the test, and saves its outcome to a file that the
# worker running the test waits for, instead of a worker starting it and waiting from the start.
DIST_TEST = "tests/integration/test_dist.py"
PACKED_RUN = pytest.StashKey[PackedPipeline]()
PACKED_RESULT = pytest.StashKey[Path]()
PACKED_RESULT_INPUT = "cdp_packed_run_result"  # the workers' key for the controller's result file


def on_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if not on_xdist_worker(config) and config.getoption("numprocesses", default=None):
        config.stash[PACKED_RESULT] = Path(tempfile.mkdtemp(prefix="cdp-test-packed-")) / "result.json"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist controller: tells each worker where the packed run's outcome will be."""
    node.workerinput[PACKED_RESULT_INPUT] = str(node.config.stash[PACKED_RESULT])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:
    """xdist controller: starts the packed run once, when a worker's selection holds the packaging test."""
    if PACKED_RUN not in node.config.stash and any(nodeid.startswith(DIST_TEST) for nodeid in ids):
        start_packed_run(node.config, node.config.stash[PACKED_RESULT])


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    dist_items = [item for item in items if item.nodeid.startswith(DIST_TEST)]
    items[:] = [item for item in items if item not in dist_items] + dist_items


def pytest_collection_finish(session: pytest.Session) -> None:
    """Starts the packed run once the selection is final (``-k`` and ``-m`` applied), if it kept the test and
    this process runs every test it collected."""
    if not on_xdist_worker(session.config) and any(item.nodeid.startswith(DIST_TEST) for item in session.items):
        start_packed_run(session.config)


def start_packed_run(config: pytest.Config, result_file: Path | None = None) -> None:
    packed = PackedPipeline(result_file)
    packed.start()
    config.stash[PACKED_RUN] = packed


def pytest_sessionfinish(session: pytest.Session) -> None:
    packed = session.config.stash.get(PACKED_RUN, None)
    if packed is not None:
        packed.stop()  # a no-op wait when the test consumed it; else ends the build or run and cleans up
    result = session.config.stash.get(PACKED_RESULT, None)
    if result is not None:
        shutil.rmtree(result.parent, ignore_errors=True)


def finished_packed_run(config: pytest.Config, timeout: float = 2400) -> PackedRun | None:
    """The packed run's outcome: from the controller's result file on an xdist worker, else from this process's
    thread (started at collection). None when it did not end within ``timeout`` seconds."""
    result_file = getattr(config, "workerinput", {}).get(PACKED_RESULT_INPUT)
    if result_file is None:
        packed = config.stash[PACKED_RUN]
        packed.join(timeout=timeout)
        return None if packed.is_alive() else packed.result
    deadline = time.monotonic() + timeout
    while not Path(result_file).exists():
        if time.monotonic() > deadline:
            return None
        time.sleep(1)
    return PackedRun.load(Path(result_file))


@pytest.fixture(scope="session")
def packed_run(request: pytest.FixtureRequest):
    """The finished `make dist` + spark-submit run (:class:`tests.integration.packed_run.PackedRun`)."""
    result = finished_packed_run(request.config)
    if result is None:
        pytest.fail("make dist or the packed run did not end within 40 minutes")
    if result.error or result.build_returncode != 0:
        pytest.fail(f"make dist or the packed run did not finish: {result.error or ''}\n"
                    f"{result.build_log.read_text()[-4000:] if result.build_log.exists() else ''}")
    yield result
