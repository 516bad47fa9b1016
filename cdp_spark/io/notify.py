"""Run notifications: an HTTP POST of the run summary (JSON) to a configured webhook.

``post_json(url, payload, timeout_s, attempts)`` retries connection errors and 5xx answers with a short
back-off and raises ``NotificationError`` naming the host (never the full URL: webhook URLs often carry
a token) when every attempt failed.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit


class NotificationError(RuntimeError):
    """The webhook could not be reached or refused the summary."""


def post_json(url: str, payload: dict[str, Any], timeout_s: float = 10.0, attempts: int = 3) -> int:
    """POSTs ``payload``; returns the HTTP status of the accepted attempt."""
    host = urlsplit(url).netloc or "?"
    body = json.dumps(payload, default=str).encode("utf-8")
    last = ""
    for attempt in range(1, attempts + 1):
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "cdp-spark"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if exc.code < 500:
                break
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            last = type(getattr(exc, "reason", exc)).__name__
        if attempt < attempts:
            time.sleep(0.2 * 2 ** attempt)
    raise NotificationError(f"webhook at {host} did not accept the run summary after {attempt} attempt(s): {last}")
