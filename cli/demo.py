"""`bank demo`: fill a running stack with a living bank, through the public REST API.

A newcomer (and the browser tests, and the README's screenshots) needs more than an empty ledger: staff of every
role with two-factor authentication, customers with accounts in a couple of currencies, months of varied history,
payees, and a few transfers held for the fraud team. Everything goes through the API a client would call (httpx,
Idempotency-Key on every command), as the people themselves: the teller takes cash at the counter, customers pay
each other, the admin creates the other staff. The one exception is the first admin, who cannot be created through
the API by anyone: like `bank users create-admin`, it is written straight into PostgreSQL (without MFA; it then
enrols MFA through the API like any admin at first login).

History is spread over months by moving business time forward (PUT /v1/admin/clock) when the stack allows it
(BANK_CLOCK_CONTROL, which `bank up --demo` turns on). Business time never runs back, so the history ends months
*ahead* of real time: the demo bank lives in the future. Without the setting every movement is dated today.

The personas' credentials are kept in `<home>/demo.json` (runtime data, never committed), so a second run signs in
as the same people, adds nothing twice and prints the same sign-in details.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs, urlparse

import asyncpg
import httpx
import pyotp
import typer
from rich.console import Console
from rich.table import Table

from api.identity import EmailTaken, UserStore
from api.security import hash_password
from core.settings import Settings, get_settings

console = Console()

STAFF_NAMES = {"admin": "Ada Admin", "teller": "Theo Teller", "analyst": "Anna Analyst"}
CUSTOMER_NAMES = (
    "Maria Schneider", "James O'Connor", "Sofia Rossi", "Lukas Novak", "Amélie Dubois", "Mateo García",
    "Ingrid Larsen", "Kwame Mensah", "Yuki Tanaka", "Priya Sharma", "Oliver Bennett", "Zofia Kowalska",
    "Hannah Weber", "Noah Fischer", "Elena Popescu", "Liam Murphy", "Aisha Khan", "Pedro Alves",
)
# Some customers also keep a second currency (every third a USD account, every fourth a GBP one).
SECOND_CURRENCIES = ((3, "USD"), (4, "GBP"))
PAYMENT_REFERENCES = ("Rent share", "Dinner", "Groceries", "Concert tickets", "Birthday present", "Car pool",
                      "Holiday flat", "Football club", "Utilities", "Book club", "Lunch", "Taxi home")
EXTERNAL_PAYEES = (("GB82 WEST 1234 5698 7654 32", "Westminster Energy Ltd"),
                   ("DE89 3704 0044 0532 0130 00", "Stadtwerke Köln"),
                   ("FR14 2004 1010 0505 0001 3M02 606", "Bouygues Telecom"))
FX_RATES = (("EUR", "USD", "1.0850"), ("EUR", "GBP", "0.8560"), ("GBP", "USD", "1.2675"))
STEP = "P10D"               # business time between two rounds of history
ROUNDS_PER_MONTH = 3
HELD_AMOUNT = 2500          # whole units: several times a demo customer's usual payment, above the rule's minimum
POLL_S = 0.2


class DemoError(RuntimeError):
    """The stack refused something the demo needs (the message says what)."""


@dataclass
class Persona:
    role: str
    name: str
    email: str
    password: str
    user_id: str = ""
    customer_id: str | None = None
    totp_secret: str | None = None
    last_step: int = 0
    accounts: dict[str, str] = field(default_factory=dict)   # currency -> account id (customers)

    def otp(self) -> tuple[str | None, float]:
        """The next unused TOTP code (the API refuses a code's time step twice), or how long to wait for one."""
        if self.totp_secret is None:
            return None, 0.0
        totp = pyotp.TOTP(self.totp_secret)
        now = time.time()
        current = totp.timecode(datetime.fromtimestamp(now, UTC))
        step = max(current, self.last_step + 1)
        if step > current + 1:   # one step of drift either way is accepted, no more
            return None, totp.interval - now % totp.interval + 0.1
        self.last_step = step
        return totp.at(now, counter_offset=step - current), 0.0

    async def code(self) -> str | None:
        while True:
            code, wait = self.otp()
            if not wait:
                return code
            await asyncio.sleep(wait)


@dataclass
class DemoState:
    personas: dict[str, Persona] = field(default_factory=dict)    # key: role for staff, email for customers
    history_done: bool = False
    held: list[str] = field(default_factory=list)                 # case ids (command ids) held for review

    @classmethod
    def load(cls, path: Path) -> DemoState:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        personas = {key: Persona(**value) for key, value in data.get("personas", {}).items()}
        return cls(personas=personas, history_done=data.get("history_done", False), held=data.get("held", []))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"personas": {key: asdict(p) for key, p in self.personas.items()}, "history_done": self.history_done,
                "held": self.held}
        path.write_text(json.dumps(data, indent=2))
        path.chmod(0o600)   # passwords and TOTP secrets of a demo, still not for every local user

    @property
    def customers(self) -> list[Persona]:
        return [p for p in self.personas.values() if p.role == "customer"]


def new_password() -> str:
    return f"Demo-{secrets.token_urlsafe(12)}"


def amount(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


class Session:
    """One persona signed in to the API: their bearer token on every request, a fresh login when it expires."""

    def __init__(self, http: httpx.AsyncClient, persona: Persona) -> None:
        self.http, self.persona = http, persona
        self.token: str | None = None
        self._signing_in = asyncio.Lock()

    async def signed_in(self, stale: str | None = None) -> str:
        """The session's token: one sign-in however many requests need it at once (`stale`: refused by the API)."""
        async with self._signing_in:
            if self.token is None or self.token == stale:
                await self.login()
            assert self.token is not None
            return self.token

    async def login(self) -> dict[str, Any]:
        while True:
            form = {"username": self.persona.email, "password": self.persona.password}
            if (code := await self.persona.code()) is not None:
                form["otp"] = code
            response = await self.http.post("/v1/auth/token", data=form)
            if not await rate_limited(response):
                break
        if response.status_code != 200:
            raise DemoError(f"cannot sign in as {self.persona.email}: {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        self.token = body["access_token"]
        return body

    async def request(self, method: str, path: str, *, key: str | None = None, **kw: Any) -> httpx.Response:
        """Retried on a transport error (the same Idempotency-Key), an expired token, or the rate limit."""
        failures, stale = 0, None
        while True:
            token = await self.signed_in(stale)
            headers = {"Authorization": f"Bearer {token}"} | ({"Idempotency-Key": key} if key else {})
            try:
                response = await self.http.request(method, path, headers=headers, **kw)
            except httpx.TransportError:
                failures += 1
                if failures == 3:
                    raise
                continue
            if response.status_code == 401 and failures < 2:
                failures, stale = failures + 1, token
            elif not await rate_limited(response):
                return response

    async def command(self, path: str, body: dict[str, Any], key: str, may_bounce: bool = False) -> dict[str, Any]:
        """A command's outcome (`may_bounce`: not enough money is an outcome too, as in life)."""
        response = await self.request("POST", path, key=key, json=body, params={"wait": "true"})
        reason = response.json().get("reason") if response.status_code >= 400 else None
        if reason == "idempotency_key_reused":   # an interrupted earlier run did this step (with other details)
            return {}
        bounced = may_bounce and response.status_code == 422 and reason == "insufficient_funds"
        if response.status_code not in (200, 201, 202) and not bounced:
            raise DemoError(f"{path} refused: {response.status_code} {response.text}")
        body: dict[str, Any] = response.json()
        return body


# ---------------------------------------------------------------- people


async def bootstrap_admin(settings: Settings, persona: Persona) -> None:
    """The first admin, straight into PostgreSQL like `bank users create-admin` (nobody can create it through the
    API); it enrols MFA through the API afterwards."""
    pool = await asyncpg.create_pool(settings.pg, min_size=1, max_size=2)
    try:
        user = await UserStore(pool).create(email=persona.email, name=persona.name, role="admin",
                                            password_hash=await hash_password(persona.password))
    except EmailTaken:
        raise DemoError(f"{persona.email} exists but its password is not in demo.json: remove the account or "
                        "pass another --email-domain") from None
    finally:
        await pool.close()
    persona.user_id = user.user_id


async def enrol_mfa(session: Session) -> None:
    """POST /v1/auth/mfa/setup with the password, then /verify with the first code: the secret is the demo's."""
    persona = session.persona
    setup = await session.request("POST", "/v1/auth/mfa/setup", json={"current_password": persona.password})
    if setup.status_code != 200:
        raise DemoError(f"MFA setup for {persona.email}: {setup.status_code} {setup.text}")
    persona.totp_secret = parse_qs(urlparse(setup.json()["otpauth_uri"]).query)["secret"][0]
    verify = await session.request("POST", "/v1/auth/mfa/verify", json={"code": await persona.code()})
    if verify.status_code != 200:
        raise DemoError(f"MFA verify for {persona.email}: {verify.status_code} {verify.text}")


async def staff_member(http: httpx.AsyncClient, admin: Session, state: DemoState, role: str, domain: str,
                       save: Any) -> Session:
    """A teller or analyst: the admin creates them (a temporary password), they sign in, choose a password and
    enrol MFA, as a new colleague would."""
    if role in state.personas:
        return Session(http, state.personas[role])
    persona = Persona(role=role, name=STAFF_NAMES[role], email=f"{role}@{domain}", password=new_password())
    created = await admin.request("POST", "/v1/admin/users", json={"email": persona.email, "name": persona.name,
                                                                   "role": role})
    if created.status_code != 201:
        raise DemoError(f"creating the {role}: {created.status_code} {created.text}")
    persona.user_id = created.json()["user"]["user_id"]
    temporary, persona.password = created.json()["temporary_password"], persona.password
    session = Session(http, Persona(role=role, name=persona.name, email=persona.email, password=temporary))
    await session.login()
    changed = await session.request("POST", "/v1/auth/password", json={"current_password": temporary,
                                                                        "new_password": persona.password})
    if changed.status_code != 200:
        raise DemoError(f"password change for the {role}: {changed.status_code} {changed.text}")
    session.persona = persona
    await enrol_mfa(session)
    state.personas[role] = persona
    save()
    return session


async def rate_limited(response: httpx.Response) -> bool:
    """The API's sign-in and registration limit per address (BANK_AUTH_RATE_LIMIT_PER_IP, 20 a minute by
    default) was reached: wait as told (True: try again)."""
    if response.status_code != 429 or response.json().get("reason") != "rate_limited":
        return False
    wait = float(response.headers.get("Retry-After") or response.json().get("retry_after") or 10)
    console.log(f"waiting {wait:.0f}s for the API's sign-in rate limit")
    await asyncio.sleep(wait)
    return True


def email_local_part(name: str) -> str:
    """`Amélie Dubois` -> `amelie.dubois` (ASCII, as people's work addresses usually are)."""
    folded = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower().replace(" ", ".")
    return "".join(c for c in folded if c.isalnum() or c == ".")


async def customer(http: httpx.AsyncClient, state: DemoState, name: str, domain: str, save: Any) -> Persona:
    local = email_local_part(name)
    email = f"{local}@{domain}"
    if email in state.personas:
        return state.personas[email]
    persona = Persona(role="customer", name=name, email=email, password=new_password())
    while True:
        response = await http.post("/v1/auth/register", json={"email": email, "password": persona.password,
                                                              "name": name})
        if not await rate_limited(response):
            break
    if response.status_code != 201:
        raise DemoError(f"registering {email}: {response.status_code} {response.text}")
    persona.user_id, persona.customer_id = response.json()["user_id"], response.json()["customer_id"]
    state.personas[email] = persona
    save()
    return persona


async def open_accounts(teller: Session, persona: Persona, index: int, save: Any) -> None:
    currencies = ["EUR"] + [currency for every, currency in SECOND_CURRENCIES if index % every == every - 1]
    for currency in currencies:
        if currency in persona.accounts:
            continue
        opened = await teller.command("/v1/accounts", {"customer_id": persona.customer_id, "currency": currency},
                                      key=f"demo-open-{persona.customer_id}-{currency}")
        persona.accounts[currency] = opened["account_id"]
        save()


# ---------------------------------------------------------------- history


async def gathered(jobs: Iterable[Awaitable[Any]], parallel: int = 6) -> list[Any]:
    gate = asyncio.Semaphore(parallel)

    async def one(job: Awaitable[Any]) -> Any:
        async with gate:
            return await job

    return list(await asyncio.gather(*(one(job) for job in jobs)))


async def clock_controlled(admin: Session) -> bool:
    response = await admin.request("GET", "/v1/admin/clock")
    return response.status_code == 200


async def advance_clock(admin: Session, step: str) -> None:
    response = await admin.request("PUT", "/v1/admin/clock", json={"advance": step})
    if response.status_code != 200:
        raise DemoError(f"moving business time: {response.status_code} {response.text}")


async def explain_dates(admin: Session, teller: Session, account_id: str) -> None:
    """Say whether the postings carry business time: the ledger may stamp its events with real time, while the
    commands (and the risk engine's windows) follow business time."""
    clock = (await admin.request("GET", "/v1/admin/clock")).json()
    page = (await teller.request("GET", f"/v1/accounts/{account_id}/transactions", params={"limit": 1})).json()
    if not page.get("items"):
        return
    posted = datetime.fromisoformat(page["items"][0]["occurred_at"].replace("Z", "+00:00"))
    now = datetime.fromisoformat(clock["now"].replace("Z", "+00:00"))
    if now - posted > timedelta(days=1):
        console.print(f"[yellow]business time is now {clock['now'][:10]}: the commands were issued (and scored by "
                      "the risk rules) over months of business time, but the ledger stamps its postings with real "
                      "time, so histories and statements show them on today's date[/]")


async def history_round(teller: Session, sessions: dict[str, Session], rng: random.Random, tag: str,
                        suspects: set[str]) -> None:
    """One round: pay day at the counter for some, a withdrawal or two, and customers paying each other."""
    customers = [s.persona for s in sessions.values()]
    jobs: list[Awaitable[Any]] = []
    for number, persona in enumerate(customers):
        for currency, account in persona.accounts.items():
            if currency == "EUR" and (rng.random() < 0.6 or persona.email in suspects):
                jobs.append(teller.command(f"/v1/accounts/{account}/deposits",
                                           {"amount": amount(rng.randint(120_000, 420_000)), "currency": currency,
                                            "reference": "Salary"}, key=f"{tag}-dep-{number}-{currency}"))
            elif currency != "EUR" and rng.random() < 0.5:
                jobs.append(teller.command(f"/v1/accounts/{account}/deposits",
                                           {"amount": amount(rng.randint(5_000, 90_000)), "currency": currency,
                                            "reference": "Cash deposit"}, key=f"{tag}-dep-{number}-{currency}"))
    await gathered(jobs)
    jobs = []
    for number, persona in enumerate(customers):
        if rng.random() < 0.25 and persona.email not in suspects:
            jobs.append(teller.command(f"/v1/accounts/{persona.accounts['EUR']}/withdrawals",
                                       {"amount": amount(rng.randint(2_000, 30_000)), "currency": "EUR",
                                        "reference": "Cash"}, key=f"{tag}-wd-{number}", may_bounce=True))
        payments = 3 if persona.email in suspects else rng.randint(0, 3)   # at most 5 debits per 10 minutes
        for count in range(payments):
            body = payment(customers, persona, rng, persona.email in suspects)
            if body is not None:
                jobs.append(sessions[persona.email].command("/v1/transfers", body, key=f"{tag}-tr-{number}-{count}",
                                                            may_bounce=True))
    await gathered(jobs)


def payment(customers: list[Persona], payer: Persona, rng: random.Random, suspect: bool) -> dict[str, str] | None:
    """A customer paying another in the same currency: planned before anything is sent, so the same seed plans
    the same payments whatever order the requests finish in (a rerun's keys carry the same bodies)."""
    currency = "EUR" if suspect else rng.choice(sorted(payer.accounts))
    payees = [c for c in customers if c is not payer and currency in c.accounts]
    if not payees:
        return None
    payee = rng.choice(payees)
    return {"from_account_id": payer.accounts[currency], "to_account_id": payee.accounts[currency],
            "amount": amount(rng.randint(1_000, 15_000)), "currency": currency,
            "reference": rng.choice(PAYMENT_REFERENCES)}


async def held_transfer(session: Session, payee: Persona, key: str) -> str:
    """Several times the payer's usual payment: the large-amount-relative rule holds it for review."""
    payer = session.persona
    body = {"from_account_id": payer.accounts["EUR"], "to_account_id": payee.accounts["EUR"],
            "amount": f"{HELD_AMOUNT}.00", "currency": "EUR", "reference": "Deposit for a used car"}
    outcome = await session.command("/v1/transfers", body, key=key)
    if outcome.get("status") != "held":
        console.print(f"[yellow]the large transfer of {payer.name} was not held ({outcome.get('status')}): the "
                      "live rule set may differ from rules/default.yaml[/]")
    return str(outcome["command_id"])


async def payees(session: Session, customers: list[Persona], ibans: dict[str, str], rng: random.Random) -> None:
    """Two payees each: another customer of the bank (their EUR account's IBAN), and a company elsewhere."""
    others = [c for c in customers if c is not session.persona and ibans.get(c.email)]
    chosen = [rng.choice(EXTERNAL_PAYEES)]
    if others:
        friend = rng.choice(others)
        chosen.insert(0, (ibans[friend.email], friend.name))
    for iban, name in chosen:
        response = await session.request("POST", "/v1/payees", json={"iban": iban, "name": name})
        if response.status_code not in (201, 409):   # 409: the payee is there from an earlier run
            raise DemoError(f"payee {name}: {response.status_code} {response.text}")


async def iban_of(teller: Session, account_id: str) -> str:
    response = await teller.request("GET", f"/v1/accounts/{account_id}")
    return str(response.json().get("iban") or "") if response.status_code == 200 else ""


async def fx_rates(admin: Session) -> None:
    rates = [{"base": base, "quote": quote, "mid": mid} for base, quote, mid in FX_RATES]
    response = await admin.request("PUT", "/v1/admin/fx/rates", json={"rates": rates})
    if response.status_code not in (200, 201):
        raise DemoError(f"setting FX rates: {response.status_code} {response.text}")


# ---------------------------------------------------------------- the whole bank


async def fill(settings: Settings, api_url: str, customers: int, months: int, domain: str, seed: int,
               step: str = STEP) -> DemoState:
    path = settings.home / "demo.json"
    state = DemoState.load(path)

    def save() -> None:
        state.save(path)

    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=api_url, timeout=120) as http:
        if "admin" not in state.personas:
            persona = Persona(role="admin", name=STAFF_NAMES["admin"], email=f"admin@{domain}",
                              password=new_password())
            await bootstrap_admin(settings, persona)
            admin = Session(http, persona)
            await admin.login()
            await enrol_mfa(admin)
            state.personas["admin"] = persona
            save()
        else:   # signs in when first needed (a code's time step is used once: no sign-in wasted)
            admin = Session(http, state.personas["admin"])
        teller = await staff_member(http, admin, state, "teller", domain, save)
        await staff_member(http, admin, state, "analyst", domain, save)
        people = [await customer(http, state, name, domain, save) for name in CUSTOMER_NAMES[:customers]]
        for index, persona in enumerate(people):
            await open_accounts(teller, persona, index, save)
        if state.history_done:
            console.print("[dim]history was filled by an earlier run: nothing added[/]")
            return state
        await fx_rates(admin)
        sessions = {p.email: Session(http, p) for p in people}
        suspects = {p.email for p in people[: max(1, min(3, len(people) // 4))]}
        controlled = await clock_controlled(admin)
        # Two rounds at least: the large-amount rule wants 5 earlier debits before it compares.
        rounds = max(2, months * ROUNDS_PER_MONTH) if controlled else 2
        if not controlled:
            console.print("[yellow]business time cannot be moved here (BANK_CLOCK_CONTROL is off): the whole "
                          "history is dated today[/]")
        run = state.personas["admin"].user_id[:8]
        for number in range(rounds):
            if controlled and number:
                await advance_clock(admin, step)
            await history_round(teller, sessions, rng, f"demo-{run}-{number}",
                                suspects if number >= rounds - 2 else set())
            console.log(f"history: round {number + 1} of {rounds}")
        if controlled:
            await explain_dates(admin, teller, people[0].accounts["EUR"])
        ibans = {p.email: await iban_of(teller, p.accounts["EUR"]) for p in people}
        await gathered(payees(sessions[p.email], people, ibans, rng) for p in people)
        victims = [p for p in people if p.email not in suspects]
        for number, email in enumerate(sorted(suspects)):
            payee = victims[number % len(victims)] if victims else people[-1]
            state.held.append(await held_transfer(sessions[email], payee, f"demo-{run}-held-{number}"))
        state.history_done = True
        save()
    return state


def print_personas(state: DemoState, api_url: str) -> None:
    table = Table(title="the demo bank: sign in as", show_header=True)
    for column in ("who", "sign in at", "email", "password", "TOTP secret"):
        table.add_column(column)
    for persona in sorted(state.personas.values(), key=lambda p: (p.role == "customer", p.role, p.name)):
        where = f"{api_url}/app/" if persona.role == "customer" else f"{api_url}/admin/"
        table.add_row(f"{persona.name} ({persona.role})", where, persona.email, persona.password,
                      persona.totp_secret or "-")
    console.print(table)
    console.print("A staff code now: [bold]python -c \"import pyotp; print(pyotp.TOTP('SECRET').now())\"[/] (or add "
                  "the secret to an authenticator app). The API itself: " + f"{api_url}/docs")
    if state.held:
        console.print(f"{len(state.held)} transfers wait for review in the fraud queue: " + ", ".join(state.held))


def demo(
    customers: Annotated[int, typer.Option(min=2, max=len(CUSTOMER_NAMES), help="How many customers.")] = 12,
    months: Annotated[int, typer.Option(min=1, max=24, help="Months of history (with business time control).")] = 4,
    email_domain: Annotated[str, typer.Option(help="The personas' email domain.")] = "demo.example.com",
    seed: Annotated[int, typer.Option(help="Seed of the generated history.")] = 2026,
    api_url: Annotated[str | None, typer.Option(help="The API (default: the local stack's).")] = None,
    round_every: Annotated[str, typer.Option(help="Business time between rounds of history (ISO 8601).")] = STEP,
) -> None:
    """Fill the running stack with a living bank through the public API: staff with MFA, customers with months of
    history, payees, transfers held for review. Safe to run again: it signs in as the same people."""
    settings = get_settings()
    url = api_url or f"http://{settings.api_host}:{settings.api_port}"
    if run_demo(settings, url, customers, months, email_domain, seed, round_every) is None:
        raise typer.Exit(1)


def run_demo(settings: Settings, api_url: str, customers: int = 12, months: int = 4,
             email_domain: str = "demo.example.com", seed: int = 2026, step: str = STEP) -> DemoState | None:
    """Fill and print the sign-in details; None (said on the console) when the stack refused something."""
    try:
        state = asyncio.run(fill(settings, api_url, customers, months, email_domain, seed, step))
    except (DemoError, httpx.HTTPError) as error:
        console.print(f"[bold red]demo failed:[/] {error}")
        return None
    print_personas(state, api_url)
    return state
