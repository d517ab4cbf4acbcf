"""One settings object for every process, read from env vars prefixed BANK_."""

from __future__ import annotations

from datetime import time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BANK_", extra="ignore")

    # Where `bank up` keeps embedded servers' data, logs and pid files.
    home: Path = PROJECT_ROOT / ".bank"
    topics_file: Path = PROJECT_ROOT / "topics.yaml"
    # Replication factor of every topic (ours and Faust's changelogs), overriding topics.yaml, whose
    # default (1) suits the single-node embedded broker. docker-compose's three-node Kafka sets 3.
    topic_replication: int | None = Field(default=None, ge=1)
    migrations_dir: Path = PROJECT_ROOT / "migrations"

    # External servers. When one is set, `bank up` uses it instead of starting its own.
    kafka_bootstrap: str | None = None
    pg_dsn: str | None = None
    redis_url: str | None = None
    mongo_url: str | None = None
    # The schema registry readers resolve message schema ids with (the embedded one of `bank up` when unset;
    # docker-compose runs Karapace). Writers never call it: ids come from schemas/schema_ids.json.
    schema_registry_url: str | None = None

    # Kafka security (issue 14 point 8), for every Kafka client of a process and for Faust (infra/kafka_security.py).
    # PLAINTEXT, the embedded broker's only protocol, needs nothing more. SASL_* need a mechanism, a username and a
    # password; SSL and SASL_SSL verify the brokers against `kafka_ssl_cafile` (else the system's CAs) and present
    # `kafka_ssl_certfile` (its key in `kafka_ssl_keyfile` or in the same file) if the brokers want a client
    # certificate. docker-compose runs SASL_SSL with SCRAM-SHA-512, one user per service (README, "Kafka security").
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: FilePath | None = None
    kafka_ssl_certfile: FilePath | None = None
    kafka_ssl_keyfile: FilePath | None = None

    # Ports of the embedded servers (only used when the matching URL above is unset).
    kafka_port: int = 19092
    pg_port: int = 15432
    redis_port: int = 16379
    mongo_port: int = 17017
    schema_registry_port: int = 18081

    # Monitoring: the consumer-lag exporter (`bank lag --serve`) and Prometheus (`bank up --with-prometheus`).
    lag_exporter_port: int = 9308
    scheduler_port: int = 9310       # the standing-order scheduler's /metrics (open once it has caught up)
    prometheus_port: int = 9090

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    worker_web_host: str = "127.0.0.1"  # 0.0.0.0 in containers, so Prometheus can scrape the workers
    worker_web_port: int = 6066

    # External payments (issue 14 points 6, 7): the payment gateway hands instructions to the rail adapter named
    # here (`http`: a rail speaking the simulator's HTTP API, simulators/rail.py) at BANK_RAIL_URL, or, unset, at the
    # sandbox rail `bank up` starts on BANK_RAIL_PORT. The rail calls the bank's /v1/rail/* endpoints with the
    # shared secret BANK_RAIL_SECRET (header Rail-Secret); unset, those endpoints answer 503 (`bank up` and the
    # test stack generate one under BANK_HOME).
    rail_adapter: Literal["http"] = "http"
    rail_url: str | None = None
    rail_port: int = 18090
    rail_secret: SecretStr | None = None
    rail_settle_delay: timedelta = timedelta(milliseconds=500)     # the sandbox rail's, before it settles
    rail_retry_initial: timedelta = timedelta(milliseconds=100)    # the gateway's backoff while the rail is down
    rail_retry_max: timedelta = timedelta(seconds=5)
    rail_timeout: timedelta = timedelta(seconds=5)                 # one HTTP call to the rail
    gateway_port: int = 9311                                        # the gateway connector's /metrics

    # Credit assessment (issue 17 point 3): an external score from the credit bureau adapter named here
    # (infra/credit_bureau.py; `http`: a bureau speaking the simulator's HTTP API, simulators/bureau.py) at
    # BANK_CREDIT_BUREAU_URL, or, unset, at the simulator `bank up` starts on BANK_CREDIT_BUREAU_PORT. The bank
    # authenticates with BANK_CREDIT_BUREAU_API_KEY (`bank up` and the test stack generate one under BANK_HOME).
    credit_bureau_adapter: Literal["http"] = "http"
    credit_bureau_url: str | None = None
    credit_bureau_port: int = 18091
    credit_bureau_api_key: SecretStr | None = None
    credit_bureau_timeout: timedelta = timedelta(seconds=5)        # one HTTP call to the bureau

    # Stream processing.
    app_id: str = "bankstream-ledger"
    processing_guarantee: Literal["at_least_once", "exactly_once"] = "at_least_once"
    # How often consumed offsets are committed. Under exactly_once this is the latency of every hop
    # (events become visible to read_committed readers when their transaction commits).
    commit_interval: timedelta = timedelta(milliseconds=250)
    # How often the ledger writes snapshots of its tables (accounts, processed command ids). Its event log is its
    # changelog: a restart folds the log's tail since the last snapshot, so this bounds that tail, not safety.
    # A snapshot writes each account changed since the last one once: longer means fewer records (10,000 busy
    # accounts: 1.5 records per transfer at 5 s, 0.3 at 30 s) and a smaller changelog to restore, but a longer
    # tail to fold before a restarted worker decides again (about 3,000 events/s of it at 1,000 transfers/s).
    # 0 writes them after every batch (as exactly_once always does).
    ledger_snapshot_interval: timedelta = timedelta(seconds=20)
    # How often the risk agent writes snapshots of its tables (features, assessments). Its offsets are committed
    # only as far as its last snapshot: a restart scores the commands since then again against the snapshot's
    # features, and gets the same assessments (scoring depends on the movements' own times). Longer means fewer
    # records (0.97 per transfer at 5 s, 0.32 at 30 s) and more to score again after a crash under load, which new
    # commands of the same partitions wait behind. 0: after every batch.
    # Either agent snapshots as soon as it has been quiet for a second (streams/checkpoint.py).
    risk_snapshot_interval: timedelta = timedelta(seconds=15)
    # How long the agents remember a command id they have handled (the ledger's processed commands, the risk
    # agent's assessments): a retry or redelivery inside it is recognised; past it the id goes, so state stays flat.
    processed_retention: timedelta = timedelta(days=7)
    # Client-side long polling of idle consumers (infra/kafka_fetch.py, embedded broker defect 6): an empty
    # fetch lasts at least this long. 0 turns it off (real Kafka holds empty fetches itself).
    kafka_empty_fetch_backoff_ms: int = Field(default=5, ge=0, le=500)
    # ... doubling while a consumer's fetches stay empty, up to this: an idle stack polls less (see the module).
    kafka_idle_fetch_backoff_max_ms: int = Field(default=40, ge=0, le=500)
    # The largest record (key + value + headers) an agent takes from a command topic; a bigger one is
    # dead-lettered undecoded (streams/dead_letters.py). The API's commands are a few hundred bytes. Kept well
    # under Kafka's 1 MiB message limit (producers' max_request_size, the broker's max.message.bytes), so a
    # forwarded command or a dead letter, with the headers an agent adds, always fits.
    max_command_bytes: int = Field(default=64 * 1024, ge=4 * 1024, le=512 * 1024)
    # Static group membership: one stable id per worker process (see streams/broker_workarounds.py).
    worker_id: str = "ledger-1"
    workers: int = 1
    # The read models a projection worker (`python -m streams.projections`) maintains.
    projections: list[Literal["postgres", "redis", "mongo"]] = ["postgres", "redis", "mongo"]
    projection_workers: int = 1

    # Fraud and AML scoring. When on, the API sends every command through the risk agent (bank.risk.commands),
    # which scores money movements before the ledger decides them. The rules file is the rule set a worker
    # uses until a version is published on bank.risk.rules (`bank rules publish`).
    risk_enabled: bool = True
    rules_file: Path = PROJECT_ROOT / "rules" / "default.yaml"
    sanctions_file: Path = PROJECT_ROOT / "rules" / "sanctions.csv"
    # The currency transaction report's threshold: cash in (or out) per customer, currency and UTC day, in
    # major units of each currency (a decimal string, like every amount).
    ctr_threshold: str = "10000"

    # Bank policy the ledger and the API enforce (core/ledger.py LedgerPolicy). Amounts are decimal strings in
    # major units, read in each accepted currency's own units; the *_LIMITS/*_THRESHOLDS mappings (JSON in the
    # environment, currency -> amount) override single currencies, e.g. BANK_MAX_OVERDRAFT_LIMITS='{"JPY": "750000"}'.
    # The largest overdraft staff may grant an account (when opening it, or with SetOverdraftLimit).
    max_overdraft_limit: str = "5000"
    max_overdraft_limits: dict[str, str] = {}
    # Maker-checker: a staff member's cash deposit or withdrawal above this is held until another staff member
    # (an analyst or admin) approves it through the case queue.
    cash_dual_control_threshold: str = "10000"
    cash_dual_control_thresholds: dict[str, str] = {}
    # A teller's cash deposit or withdrawal needs their drawer open in its currency (core/drawers.py): 409
    # drawer_not_open otherwise. Admins' back-office movements are not tied to a drawer.
    drawer_required: bool = True
    # Loans (core/lending.py): an approval of more than this principal needs a second staff member's approval of
    # the same terms (four eyes), read in the loan's currency's major units like the thresholds above.
    loan_second_approval_threshold: str = "25000"
    loan_second_approval_thresholds: dict[str, str] = {}

    # Business time (core/clock.py, infra/clock.py). Off in production: business time is real time. On (tests,
    # demos), admins may move it forward with PUT /v1/admin/clock and every process reads it from bank.clock;
    # off, GET and PUT /v1/admin/clock answer 404 and nobody reads the topic.
    clock_control: bool = False
    # Standing orders (core/standing_orders.py; the scheduler is streams/scheduler.py). Due dates are in the
    # customer's time zone: this one unless the order names another. An occurrence whose local day passed while
    # the scheduler was down (or business time jumped) is paid late or skipped, recorded either way. After
    # insufficient funds an occurrence is tried once more at `standing_order_retry_time` local time on its due
    # day (at once if that has passed), then fails. The scheduler looks for due occurrences every
    # `scheduler_interval`.
    customer_time_zone: str = "Europe/Berlin"
    standing_order_catch_up: Literal["pay_late", "skip"] = "pay_late"
    standing_order_retry_time: time = time(14, 0)
    scheduler_interval: timedelta = timedelta(seconds=1)
    # Account numbers and IBANs (core/account_numbers.py): every customer account gets a national account number
    # and an IBAN of this country and bank code. The default bank code is Bankleitzahl-shaped but assigned to no
    # bank in the Bundesbank's list (as schwifty ships it), so no real bank's IBAN is ever taken for one of ours;
    # a real bank sets its own. Change them only for a new bank: numbers already given stay on the log as they
    # are, and their IBANs are built with these.
    iban_country: str = Field(default="DE", pattern=r"^[A-Z]{2}$")
    iban_bank_code: str = Field(default="10090099", pattern=r"^[0-9A-Z]{1,12}$")

    # Level of the platform's own loggers (JSON lines on stderr; see infra/logs.py).
    log_level: str = "INFO"

    # Fault injection for crash tests: "<point>:<n>" kills the worker hard the n-th time it passes <point>
    # (see streams/failpoints.py). Never set in production.
    failpoint: str | None = None

    # API behaviour.
    command_timeout: timedelta = timedelta(seconds=5)
    # How long a query with ?min_position= waits for its read model to reach that position.
    read_your_writes_timeout: timedelta = timedelta(seconds=5)
    max_body_bytes: int = 16 * 1024
    # Requests one API process takes at once (0: no limit); past it a request is answered 503 with Retry-After at
    # once (api/middleware.py InFlightLimit). A `?wait=true` command waiting for its outcome counts.
    api_max_in_flight: int = Field(default=256, ge=0)

    # Identity and access (api/authz.py, api/security.py). Access tokens are HS256 JWTs signed with the key of
    # `jwt_active_kid`; every key in `jwt_keys` (kid -> secret of at least 32 characters, JSON in the
    # environment) still verifies tokens. Rotation: add a key, make it active, remove the old one once its
    # tokens have expired (after `access_token_ttl`). `bank up` generates dev keys under its home when unset.
    jwt_keys: dict[str, SecretStr] = {}
    jwt_active_kid: str | None = None
    jwt_issuer: str = "bankstream"
    access_token_ttl: timedelta = timedelta(minutes=10)
    # A session (and its refresh token) ends this long after its last refresh, or when revoked.
    session_ttl: timedelta = timedelta(days=7)
    # Rate limits (Redis, fixed windows of `rate_limit_window`): every request per client IP and per user;
    # stricter ones on the credential endpoints (token, register, refresh) per IP and on MFA per user.
    rate_limit_window: timedelta = timedelta(minutes=1)
    rate_limit_per_ip: int = Field(default=1200, ge=1)
    rate_limit_per_user: int = Field(default=600, ge=1)
    auth_rate_limit_per_ip: int = Field(default=20, ge=1)
    mfa_rate_limit_per_user: int = Field(default=10, ge=1)
    # argon2id's cost for new password hashes (RFC 9106's second recommended profile by default: 64 MiB, 3 passes,
    # 4 lanes); tune to the API machines. A stored hash carries its own parameters, so changing these never locks
    # anyone out: old hashes still verify and new ones get the new cost.
    password_hash_memory_kib: int = Field(default=65536, ge=8192)
    password_hash_time_cost: int = Field(default=3, ge=1)
    password_hash_parallelism: int = Field(default=4, ge=1)
    # Lock-out: this many failed logins (password or second factor) for one account within `lockout_window`
    # lock it for `lockout_duration`.
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_window: timedelta = timedelta(minutes=15)
    lockout_duration: timedelta = timedelta(minutes=15)

    # The web apps (web/: the customer app at /app/, the admin panel at /admin/), served beside the API by
    # server/main.py. They call the API over HTTP: at this URL, else this server's own port on loopback. A browser
    # session ends after `web_session_idle` without a request.
    web_api_url: str | None = None
    web_session_idle: timedelta = timedelta(minutes=30)

    # Profiles (api/routes/profile.py): phone numbers given without + are read as national numbers of this
    # country; a code sent to confirm a new email or phone expires after `contact_code_ttl` and dies after
    # `contact_code_max_attempts` wrong tries.
    phone_default_region: str = Field(default="DE", pattern=r"^[A-Z]{2}$")
    contact_code_ttl: timedelta = timedelta(minutes=15)
    contact_code_max_attempts: int = Field(default=5, ge=1)

    # Notifications (streams/notifications/, issue 19). The notifier is its own consumer group on the ledger and
    # the audit log. Email goes over SMTP (`bank up` runs a dev SMTP server keeping every message, with a mailbox
    # on `mailbox_port`, unless `smtp_host` is set); SMS through the provider adapter `sms_provider` ("http": the
    # HTTP API of the gateway simulator `bank up` runs on `sms_port`, unless `sms_url` is set).
    notifier_web_port: int = 6090
    smtp_host: str | None = None
    smtp_port: int = 2525
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_use_tls: bool = False
    mailbox_port: int = 8025            # the dev SMTP server's mailbox page and JSON
    mail_from: str = "bankstream <no-reply@bankstream.test>"
    sms_provider: Literal["http"] = "http"
    sms_url: str | None = None
    sms_port: int = 8026                # the SMS gateway simulator's HTTP API
    sms_api_key: SecretStr = SecretStr("sim-key")
    sms_sender: str = "bankstream"
    # Delivery retries: backoff doubling from `notify_retry_initial` up to `notify_retry_max`, then the message is
    # marked failed after `notify_max_attempts` tries (GET /v1/admin/notifications/failed, alert rule).
    notify_retry_initial: timedelta = timedelta(seconds=1)
    notify_retry_max: timedelta = timedelta(seconds=60)
    notify_max_attempts: int = Field(default=12, ge=1)
    # Events older than this when the notifier first reads them are folded (accounts, devices) but tell nobody:
    # a notifier started on an old log does not mail its whole history.
    notify_max_age: timedelta = timedelta(days=1)
    # A loan's customer is reminded of an instalment this many business days before its due date (0: never).
    loan_due_reminder_days: int = Field(default=3, ge=0)
    # How long one SSE connection lasts at most (clients reconnect with Last-Event-ID; each reconnect is
    # authenticated again, so a revoked session stops streaming within this).
    notification_stream_max: timedelta = timedelta(minutes=5)
    # Know your customer (api/routes/kyc.py, core/kyc.py). Documents: PDF, PNG or JPEG of at most
    # `kyc_max_document_bytes` (the upload route's body limit follows it). An unverified customer may hold one
    # account and be credited at most `kyc_unverified_receive_limit` (read in each currency's major units;
    # `kyc_unverified_receive_limits` overrides single currencies, JSON) in all.
    kyc_max_document_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    kyc_unverified_receive_limit: str = "1000"
    kyc_unverified_receive_limits: dict[str, str] = {}
    # Whether the tiers are enforced (the test session's shared stack turns them off, like its rate limits, so
    # tests about other things may open accounts and move money freely; tests/e2e/test_kyc.py runs an API with them on).
    kyc_tiers: bool = True
    # Forgotten passwords: the emailed link (`password_reset_url` + "?token=...") works once, for `password_reset_ttl`.
    password_reset_url: str = "http://127.0.0.1:8000/reset-password"
    password_reset_ttl: timedelta = timedelta(minutes=30)
    # Erasure (POST /v1/admin/customers/{id}/erase): personal data may be erased once every account of the customer
    # has been closed for at least this long (the jurisdiction's record-keeping period; AML law keeps 5 years).
    erasure_retention: timedelta = timedelta(days=5 * 365)

    @model_validator(mode="after")
    def _kafka_security_is_whole(self) -> Settings:
        """A half-configured protocol fails at start, naming what is missing, not at the first connection; credentials
        or files the protocol would not use are refused, not silently ignored."""
        protocol = self.kafka_security_protocol
        sasl = {f"BANK_{name.upper()}": getattr(self, name)
                for name in ("kafka_sasl_mechanism", "kafka_sasl_username", "kafka_sasl_password")}
        ssl_files = {f"BANK_{name.upper()}": getattr(self, name)
                     for name in ("kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile")}
        if protocol.startswith("SASL_") and (missing := [name for name, value in sasl.items() if value is None]):
            raise ValueError(f"BANK_KAFKA_SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        if not protocol.startswith("SASL_") and (given := [name for name, value in sasl.items() if value is not None]):
            raise ValueError(f"{', '.join(given)} set, but BANK_KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL")
        if not protocol.endswith("SSL") and (given := [name for name, value in ssl_files.items() if value is not None]):
            raise ValueError(f"{', '.join(given)} set, but BANK_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS")
        if self.kafka_ssl_keyfile is not None and self.kafka_ssl_certfile is None:
            raise ValueError("BANK_KAFKA_SSL_KEYFILE is the key of BANK_KAFKA_SSL_CERTFILE, which is not set")
        if protocol != "PLAINTEXT" and self.kafka_bootstrap is None:
            raise ValueError(f"BANK_KAFKA_SECURITY_PROTOCOL={protocol} needs BANK_KAFKA_BOOTSTRAP: the embedded "
                             "broker of `bank up` speaks PLAINTEXT only")
        return self

    @property
    def kafka(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

    @property
    def worker_group(self) -> str:
        """The stream workers' consumer group (streams/consumer.py). `app_id` alone was the group of Faust's
        consumer, which read the agents' topics before the engine did: a new group starts where it left off."""
        return f"{self.app_id}-workers"

    @property
    def pg(self) -> str:
        return self.pg_dsn or f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def redis(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def schema_registry(self) -> str:
        return self.schema_registry_url or f"http://127.0.0.1:{self.schema_registry_port}"

    @property
    def rail(self) -> str:
        return self.rail_url or f"http://127.0.0.1:{self.rail_port}"

    @property
    def credit_bureau(self) -> str:
        return self.credit_bureau_url or f"http://127.0.0.1:{self.credit_bureau_port}"

    @property
    def smtp(self) -> tuple[str, int]:
        return (self.smtp_host or "127.0.0.1", self.smtp_port)

    @property
    def mailbox_url(self) -> str:
        return f"http://127.0.0.1:{self.mailbox_port}"

    @property
    def sms(self) -> str:
        return self.sms_url or f"http://127.0.0.1:{self.sms_port}"

    @property
    def mongo(self) -> str:
        return self.mongo_url or f"mongodb://127.0.0.1:{self.mongo_port}/?retryWrites=false&directConnection=true"


@lru_cache
def get_settings() -> Settings:
    return Settings()
