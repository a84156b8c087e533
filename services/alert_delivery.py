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
DELIVERY_HEADER = "X-ModelQL-Delivery"
"""The delivery's id: the same on every attempt of one delivery."""
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
        """Attempt every delivery due at `now`; how many were delivered. The deliveries are
        leased in one short transaction, posted with no transaction open, and each attempt
        recorded in its own: a replica that dies mid-post leaves the lease to expire and
        another retries (at least once: receivers dedupe on the delivery id header)."""
        lease = timedelta(seconds=self._timeout_s * (self._batch + 1))
        async with self._sessionmaker() as session, session.begin():
            leased = await repo.lease_due_deliveries(session, now, now + lease, self._batch)
        if not leased:
            return 0  # an HTTP client costs an SSL context: none is made for an idle round
        delivered = 0
        async with httpx.AsyncClient(timeout=self._timeout_s, follow_redirects=False) as client:
            for due in leased:
                status, error = await self._post(client, due, now)
                delivered += error is None
                async with self._sessionmaker() as session, session.begin():
                    await repo.record_attempt(
                        session,
                        due.id,
                        delivered_at=now if error is None else None,
                        next_attempt_at=now + backoff(due.attempts + 1, self._first_backoff_s),
                        status_code=status,
                        error=error,
                    )
        return delivered

    async def _post(
        self, client: httpx.AsyncClient, due: repo.DueDelivery, now: datetime
    ) -> tuple[int | None, str | None]:
        """The attempt's status code and error (None: delivered)."""
        body = json.dumps(due.payload, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(due.secret, int(now.timestamp()), body),
            DELIVERY_HEADER: str(due.id),
        }
        try:
            answer = await client.post(due.url, content=body, headers=headers)
        except httpx.HTTPError as failed:
            return None, f"{type(failed).__name__}: {failed}"[:500]
        return answer.status_code, None if answer.is_success else f"HTTP {answer.status_code}"
