"""Helpers for live-feed tests: the app on a real socket (in this process or another one) and
a small graphql-transport-ws client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Close

from modelql.app import create_app
from modelql.services.feed import LiveFeeds
from modelql.settings import Settings

PROTOCOL = "graphql-transport-ws"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Served:
    app: FastAPI
    url: str

    @property
    def feeds(self) -> LiveFeeds:
        return self.app.state.graph_dependencies.feeds


@asynccontextmanager
async def served(settings: Settings, *, small_send_buffer: bool = False) -> AsyncIterator[Served]:
    """The application on a real socket in this event loop. A small send buffer (inherited by
    accepted sockets) makes a client that stops reading block the server after a few KB."""
    app = create_app(settings, database_url=str(settings.database_url))
    listening = socket.socket()
    if small_send_buffer:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield Served(app, f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        await task
        listening.close()


@asynccontextmanager
async def served_elsewhere(
    settings: Settings, environment: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """The application in a process of its own (`modelql serve`), on the same database, with
    `environment`'s settings too."""
    port = free_port()
    environment = {
        **os.environ,
        "DATABASE_URL": str(settings.database_url),
        "MODELQL_DATA_DIR": str(settings.data_dir),
        "MODELQL_AUTH_MODE": str(settings.auth_mode),
        "MODELQL_LOG_JSON": "false",
        **(environment or {}),
    }
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "modelql.cli", "serve", "--no-demo", "--no-migrate"),
        *("--port", str(port)),
        env=environment,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                assert process.returncode is None, "the second server exited"
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{base_url}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the second server did not become ready")
        yield base_url
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 10)


class Subscriptions:
    """One graphql-transport-ws connection."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self._ids = 0

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        base_url: str,
        payload: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        *,
        slow_reader: bool = False,
    ) -> AsyncIterator[Subscriptions]:
        """Connect and send connection_init (`acknowledged` awaits the answer). A slow reader
        buffers almost nothing: a tiny socket receive buffer and one queued frame."""
        url = base_url.replace("http", "ws", 1) + "/graphql"
        options: dict[str, Any] = {"subprotocols": [PROTOCOL], "additional_headers": headers}
        if slow_reader:
            tcp = socket.socket()
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            tcp.setblocking(False)
            host, port = url.split("/")[2].split(":")
            await asyncio.get_running_loop().sock_connect(tcp, (host, int(port)))
            options.update(sock=tcp, max_queue=1, ping_interval=None)
        async with connect(url, **options) as ws:
            connection = cls(ws)
            await connection.send({"type": "connection_init", "payload": payload or {}})
            yield connection

    async def send(self, message: dict[str, object]) -> None:
        await self.socket.send(json.dumps(message))

    async def receive(self, within: float = 5.0) -> dict[str, Any]:
        """The next message, waiting at most `within` seconds."""
        return json.loads(await asyncio.wait_for(self.socket.recv(), within))

    async def acknowledged(self) -> None:
        message = await self.receive()
        assert message["type"] == "connection_ack", message

    async def subscribe(self, query: str, variables: dict[str, object] | None = None) -> str:
        self._ids += 1
        operation = str(self._ids)
        await self.send(
            {
                "id": operation,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables or {}},
            }
        )
        return operation

    async def complete(self, operation: str) -> None:
        await self.send({"id": operation, "type": "complete"})

    async def until_closed(self) -> tuple[list[dict[str, Any]], Close]:
        """Every message left, and the close frame the server sent."""
        messages = []
        try:
            while True:
                messages.append(await self.receive(within=10))
        except ConnectionClosed as closed:
            if closed.rcvd is None:
                raise AssertionError(f"closed without a close frame: {closed!r}") from closed
            return messages, closed.rcvd
