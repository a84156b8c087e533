"""Webhook deliveries from the outbox: a JSON body signed with HMAC-SHA256 over
`<timestamp>.<body>` with the rule's secret, retried with exponential backoff until a 2xx."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from modelql.persistence import alert_repository as repo

SIGNATURE_HEADER = "X-ModelQL-Signature"
"""`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`."""
MAX_BACKOFF_S = 300.0


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def backoff(attempts: int, first_s: float) -> timedelta:
    """The wait after the `attempts`-th failed attempt (1, 2, ...)."""
    return timedelta(seconds=min(first_s * 2 ** (attempts - 1), MAX_BACKOFF_S))


class AlertDeliverer:
    """Posts the due deliveries; replicas share the outbox (SKIP LOCKED)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        first_backoff_s: float = 1.0,
        timeout_s: float = 5.0,
        batch: int = 50,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._first_backoff_s = first_backoff_s
        self._timeout_s = timeout_s
        self._batch = batch

    async def deliver_due(self, now: datetime) -> int:
        """Attempt every delivery due at `now`; how many were delivered."""
        delivered = 0
        async with (
            self._sessionmaker() as session,
            session.begin(),
            httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False) as client,
        ):
            for due in await repo.due_deliveries(session, now, self._batch):
                body = json.dumps(due.payload, separators=(",", ":")).encode()
                status: int | None = None
                error: str | None = None
                try:
                    answer = await client.post(
                        due.url,
                        content=body,
                        headers={
                            "Content-Type": "application/json",
                            SIGNATURE_HEADER: sign(due.secret, int(now.timestamp()), body),
                        },
                    )
                    status = answer.status_code
                    if not answer.is_success:
                        error = f"HTTP {status}"
                except httpx.HTTPError as failed:
                    error = f"{type(failed).__name__}: {failed}"[:500]
                ok = error is None
                delivered += ok
                await repo.record_attempt(
                    session,
                    due.id,
                    delivered_at=now if ok else None,
                    next_attempt_at=now + backoff(due.attempts + 1, self._first_backoff_s),
                    status_code=status,
                    error=error,
                )
        return delivered
