"""Delivery channels beyond the inbox: email over SMTP and SMS through a provider adapter.

A send either returns (the provider took the message: its id) or raises DeliveryError, transient (the channel is
down: retry with backoff) or not (the provider refused this message: retrying cannot help).
"""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol

import aiosmtplib
import httpx

from core.settings import Settings


class DeliveryError(Exception):
    def __init__(self, message: str, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class EmailChannel:
    def __init__(self, settings: Settings) -> None:
        self._host, self._port = settings.smtp
        self._sender = settings.mail_from
        self._username = settings.smtp_username
        self._password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        self._tls = settings.smtp_use_tls

    async def send(self, notification_id: str, to: str, subject: str, body: str) -> str:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = self._sender, to, subject
        # The notification id names the message: a receiving system (and the dev mailbox) can tell it apart.
        message["Message-ID"] = f"<{notification_id}@bankstream>"
        message["X-Bank-Notification-Id"] = notification_id
        message.set_content(body)
        try:
            await aiosmtplib.send(message, hostname=self._host, port=self._port, username=self._username,
                                  password=self._password, start_tls=self._tls, timeout=10)
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise DeliveryError(f"recipient refused: {error}", transient=False) from None
        except (aiosmtplib.SMTPException, OSError) as error:
            raise DeliveryError(f"{type(error).__name__}: {error}") from None
        return message["Message-ID"]


class SmsProvider(Protocol):
    """What the platform needs of an SMS provider. `reference` is our idempotency key (the notification id):
    a provider that takes one never sends the same reference twice."""

    async def send(self, to: str, body: str, reference: str) -> str: ...


class HttpSmsProvider:
    """A provider with a JSON HTTP API (the gateway simulator, simulators/sms.py, speaks it): POST /v1/messages
    with a bearer key; 2xx accepted (200: the reference was accepted before), 5xx/429/unreachable transient, other
    4xx refused."""

    def __init__(self, base_url: str, api_key: str, sender: str) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=10,
                                       headers={"Authorization": f"Bearer {api_key}"})
        self._sender = sender

    async def send(self, to: str, body: str, reference: str) -> str:
        try:
            response = await self._http.post("/v1/messages", json={"to": to, "from": self._sender, "body": body,
                                                                   "reference": reference})
        except httpx.HTTPError as error:
            raise DeliveryError(f"{type(error).__name__}: {error}") from None
        if response.status_code in (200, 201):
            return str(response.json().get("id", ""))
        transient = response.status_code >= 500 or response.status_code == 429
        raise DeliveryError(f"HTTP {response.status_code}: {response.text[:200]}", transient=transient)

    async def close(self) -> None:
        await self._http.aclose()


def sms_provider(settings: Settings) -> HttpSmsProvider:
    """The adapter `sms_provider` names (today: "http", the simulator's API and providers shaped like it)."""
    return HttpSmsProvider(settings.sms, settings.sms_api_key.get_secret_value(), settings.sms_sender)
