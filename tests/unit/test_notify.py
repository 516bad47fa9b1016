"""The run-summary webhook against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cdp_spark.io.notify import NotificationError, post_json
from tests.webhook import Hook


@pytest.fixture()
def hook() -> Iterator[Hook]:
    server = Hook([])
    yield server
    server.stop()


def test_summary_is_posted_as_json_and_5xx_is_retried(hook):
    hook.answers.extend([503, 200])
    assert post_json(hook.url, {"status": "succeeded", "run_id": "r1"}, timeout_s=5, attempts=3) == 200
    assert hook.received == [{"type": "application/json", "body": {"status": "succeeded", "run_id": "r1"}}] * 2


def test_refusal_and_unreachable_name_the_host_never_the_token(hook):
    hook.answers.extend([400])
    refusal = r"webhook at 127\.0\.0\.1:\d+ did not accept .* 1 attempt\(s\): HTTP 400"
    with pytest.raises(NotificationError, match=refusal) as refused:
        post_json(hook.url, {"status": "failed"}, timeout_s=5, attempts=3)
    assert "s3cret" not in str(refused.value)
    hook.stop()
    with pytest.raises(NotificationError, match=r"after 2 attempt\(s\)") as down:
        post_json(hook.url, {"status": "failed"}, timeout_s=2, attempts=2)
    assert "s3cret" not in str(down.value)
