"""Configuration, from `HANDOFF_*` environment variables or keyword arguments (tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, IPvAnyNetwork, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# What a customer may say that someone should hear about, by kind: the brief flags it, and the
# kinds HANDOFF_ALERT_RULES names alert a supervisor.
DEFAULT_LEXICON: dict[str, list[str]] = {
    "legal": ["lawsuit", "attorney", "lawyer", "solicitor", "sue you", "legal action", "fraud",
              "police"],
    "churn": ["cancel my account", "close my account", "cancel my subscription",
              "switch provider", "take my business elsewhere"],
    "complaint": ["complaint", "formal complaint", "ombudsman", "regulator"],
    "vulnerability": ["bereavement", "passed away", "can't afford", "cannot afford",
                      "lost my job", "mental health", "disability"],
    "frustration": ["ridiculous", "unacceptable", "worst service", "third time", "fed up"],
}
AlertSeverity = Literal["low", "medium", "high", "off"]
DEFAULT_ALERT_RULES: dict[str, dict[str, AlertSeverity]] = {
    "*": {"legal": "high", "vulnerability": "high", "complaint": "medium", "churn": "medium",
          "frustration": "low"}}
# Alert kinds travel in Redis field names (see services/alerts.py): plain words only.
ALERT_KIND = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# The scheme of a store URL naming Redis Sentinels rather than a server (see `store_url`).
SENTINEL_SCHEME = "redis+sentinel://"
DEFAULT_HUMAN_TERMS = ["agent", "human", "representative", "real person", "operator",
                       "speak to someone", "talk to someone"]



class ReaskTopic(BaseModel):
    """Something an agent must not ask for again once the context has it: the fact keys and
    identity kinds that hold it, and the words agents use to ask for it."""

    keys: list[str]
    phrases: list[str]


DEFAULT_REASK_TOPICS: dict[str, ReaskTopic] = {
    "account": ReaskTopic(
        keys=["account", "account_number", "account_id"],
        phrases=["account number", "account no", "account #", "account id", "acct number",
                 "account details", "customer number", "membership number"]),
    "order_number": ReaskTopic(
        keys=["order_number", "order", "order_id", "order_ref"],
        phrases=["order number", "order no", "order #", "order id", "order reference",
                 "order ref", "order confirmation number", "confirmation number", "which order",
                 "order you're chasing", "order you are chasing", "order you're calling about",
                 "order you're asking about"]),
    "date_of_birth": ReaskTopic(
        keys=["dob", "date_of_birth", "birth_date", "dob_checked"],
        phrases=["date of birth", "birth date", "birthdate", "birthday", "dob",
                 "when you were born", "when were you born"]),
    "email": ReaskTopic(
        keys=["email", "email_address"],
        phrases=["email address", "email", "e-mail address", "e-mail", "mail address"]),
    "phone": ReaskTopic(
        keys=["phone", "phone_number", "mobile", "callback_number"],
        phrases=["phone number", "telephone number", "mobile number", "cell number",
                 "contact number", "callback number", "call back number", "call-back number",
                 "phone", "mobile", "number to reach you", "number to call you",
                 "number to ring you", "number to get you on", "number to contact you",
                 "number i can call you", "number we can call you", "number i can reach you",
                 "number we can reach you", "number can we reach you", "number can i reach you",
                 "number can we call you", "number can i call you", "best number"]),
    "card": ReaskTopic(
        keys=["card", "card_number", "card_last4", "card_on_file", "x-card"],
        phrases=["card number", "long number on your card", "card details", "credit card",
                 "debit card", "card"]),
    "address": ReaskTopic(
        keys=["address", "postal_address", "postcode", "zip", "billing_address",
              "shipping_address"],
        phrases=["address", "postcode", "post code", "zip code", "postal code",
                 "where you live"]),
}


class Settings(BaseSettings):
    """Every knob of the service; docs/configuration.md lists them (handoff.programs.configdoc)."""

    model_config = SettingsConfigDict(env_prefix="HANDOFF_", extra="ignore")

    redis_url: str | None = Field(
        default=None, description="redis:// or rediss:// URL; unset starts the embedded server")
    redis_cluster: bool = Field(
        default=False, description="treat redis_url as a Redis Cluster seed node")
    data_dir: Path = Field(default=Path("handoff-data"), description="embedded Redis data folder")
    host: str = Field(default="127.0.0.1", description="address to listen on (`--host`)")
    port: int = Field(default=8080, description="port to listen on (`--port`)")
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024,
                                description="larger request bodies get 413")
    header_timeout: float = Field(
        default=10.0, gt=0,
        description="seconds a client has to send a request's headers, from connecting (or "
                    "from the first byte of a later request on a kept-alive connection); a "
                    "slower one is disconnected")
    redis_timeout: float = Field(default=2.0, gt=0, description="seconds before a command fails")
    redis_max_connections: int = Field(default=256, description="the command pool's size")
    redis_sentinels: str = Field(
        default="", pattern=r"^\s*([^\s,]+:\d+\s*(,\s*[^\s,]+:\d+\s*)*)?$",
        description="Redis Sentinel addresses, host:port separated by commas: the primary is "
                    "whichever server they name now, followed through failovers; redis_url (if "
                    "set) then gives only its credentials and database")
    redis_sentinel_service: str = Field(
        default="handoff", pattern=r"^[A-Za-z0-9._-]{1,128}$",
        description="the name the sentinels monitor the primary under")
    write_ack: Literal["local", "replica"] = Field(
        default="local",
        description="when a write is acknowledged: local, once the primary has it (and its disk, "
                    "with appendfsync always); replica, once a replica also confirms it (WAIT), "
                    "else 503 with Retry-After. Not with redis_cluster")
    write_ack_timeout: float = Field(
        default=1.0, gt=0,
        description="seconds a replica has to confirm a write (write_ack replica) before the "
                    "request answers 503; less than redis_timeout")
    retention_days: float = Field(default=30.0, gt=0,
                                  description="days of inactivity before a customer is deleted")
    tenant_retention_days: dict[str, float] = Field(
        default_factory=dict, description='per-tenant retention, e.g. {"acme": 7}')
    sensitive_kinds: dict[str, list[str]] = Field(
        default_factory=dict,
        description='identity kinds kept only as a keyed hash, per tenant ("*": all), '
                    'e.g. {"acme": ["account"]}')
    mask_patterns: dict[str, list[str]] = Field(
        default_factory=dict,
        description='extra regular expressions to mask, per tenant ("*": all), '
                    r'e.g. {"acme": ["\b\d{3}-\d{2}-\d{4}\b"]}')
    max_concurrent_requests: int = Field(
        default=1000, ge=1, description="requests one process works on at once; more get 503")
    max_event_streams: int = Field(
        default=2000, ge=1, description="event streams one process holds open; more get 503")
    max_event_streams_per_tenant: int = Field(
        default=1000, ge=1, description="event streams one tenant holds open on one process (a "
                                        "count per process, not per deployment); more get 429")
    max_event_streams_per_key: int = Field(
        default=500, ge=1, description="event streams one API key (or one agent's panel "
                                       "tokens) holds open on one process; more get 429")
    requests_per_second_per_key: float = Field(
        default=0.0, ge=0,
        description="per process, bursts of twice that; 0 (the default): no limit")
    auth_failures_per_minute: int = Field(
        default=20, ge=1, description="failed authentications one address may make per minute; "
                                      "past it, wrong keys get 429 (valid keys never do)")
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description='proxies (CIDRs, e.g. ["10.0.0.5/32"]) whose X-Forwarded-For names the '
                    "client; from any other peer the header is ignored")
    handoff_pending_seconds: int = Field(
        default=3600, ge=10, description="a pending hand-off expires after this long")
    continuation_ttl_seconds: int = Field(default=900, ge=30,
                                          description="a continuation code's lifetime")
    continuation_digits: int = Field(default=6, ge=6, le=10,
                                     description="a continuation code's length")
    continuation_max_failures: int = Field(
        default=3, ge=1, description="wrong codes one conversation may enter before it is locked")
    continuation_caller_max_failures: int = Field(
        default=6, ge=1, description="wrong codes one caller (the number its calls come from) "
                                     "may enter over all its calls before it is locked")
    redeem_attempts_per_minute: int = Field(
        default=200, ge=1, description="wrong codes one key or address may enter per minute: a "
                                       "ceiling for a whole contact centre's callers")
    brief_turns: int = Field(default=50, ge=1, le=500,
                             description="turns in a brief unless ?turns= says otherwise")
    brief_handoffs: int = Field(default=10, ge=1, le=100,
                                description="hand-offs listed in a brief")
    brief_cache_size: int = Field(
        default=2000, ge=0, description="briefs each process keeps, rebuilt when their ETag moves")
    events_maxlen: int = Field(
        default=1000, ge=100, description="events kept per stream for Last-Event-ID replay")
    sweep_seconds: float = Field(default=15.0, gt=0, description="hand-off expiry sweep period")
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=50, description="failed deliveries before a webhook is dead-lettered")
    webhook_backoff_seconds: float = Field(
        default=5.0, gt=0, description="wait before the first retry; doubles each failure")
    webhook_backoff_max_seconds: float = Field(
        default=3600.0, gt=0, description="the longest wait between two attempts")
    webhook_timeout_seconds: float = Field(
        default=10.0, gt=0, le=120, description="a delivery not answered in time has failed")
    webhook_lease_seconds: float = Field(
        default=60.0, gt=0, description="a claimed delivery is retried by any process after this")
    webhook_poll_seconds: float = Field(
        default=1.0, gt=0, description="how often each process looks for due deliveries")
    webhook_concurrency: int = Field(
        default=16, ge=1, description="deliveries one process sends at once")
    webhook_max_subscriptions: int = Field(
        default=25, ge=1, description="webhook subscriptions per tenant")
    webhook_allow_private_networks: bool = Field(
        default=False, description="let webhooks reach loopback and private addresses")
    webhook_outbox_lease_seconds: float = Field(
        default=30.0, gt=0,
        description="a webhook event recorded with its write but not queued for delivery this "
                    "long after (its process died in between) is queued by any process")
    fault_crash_before_enqueue: bool = Field(
        default=False,
        description="for tests only: the process kills itself (SIGKILL) after a customer write "
                    "and before queuing its webhook deliveries")
    lexicon: dict[str, list[str]] = Field(
        default_factory=lambda: dict(DEFAULT_LEXICON),
        description="terms flagged in customer turns, by kind (legal, churn, complaint, "
                    "vulnerability, frustration)")
    alert_rules: dict[str, dict[str, AlertSeverity]] = Field(
        default_factory=lambda: {t: dict(r) for t, r in DEFAULT_ALERT_RULES.items()},
        description='which flag kinds alert a supervisor, and how severely, per tenant ("*": '
                    "every tenant; a tenant's own entries win); off: no alert, e.g. "
                    '{"acme": {"frustration": "off", "churn": "high"}}')
    human_request_terms: list[str] = Field(default_factory=lambda: list(DEFAULT_HUMAN_TERMS),
                                           description="words that ask for a person")
    human_request_threshold: int = Field(
        default=2, ge=1, description="requests for a person before the brief flags it")
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    metrics_token: SecretStr | None = Field(
        default=None, description="when set, /metrics answers only requests bearing it "
                                  "(its labels name tenants and queues)")
    log_format: Literal["auto", "json", "text"] = Field(
        default="auto", description="json: one JSON object per line; text: for a person; "
                                    "auto: text on a terminal, json anywhere else")
    desk_token_minutes: int = Field(
        default=60, ge=1, le=720, description="a panel token's lifetime unless asked otherwise")
    public_url: str | None = Field(
        default=None, description="the scheme, host and any path prefix callers and browsers use "
                                  "to reach this service behind a proxy: panel_url is built "
                                  "on it and vendor signatures (Twilio) cover it; unset: the "
                                  "address the request came to")
    desk_frame_ancestors: str = Field(
        default="*", description="who may embed /desk/ in a frame (CSP frame-ancestors)")
    reask_topics: dict[str, ReaskTopic] = Field(
        default_factory=lambda: dict(DEFAULT_REASK_TOPICS),
        description="what agents must not ask again: fact keys / identity kinds and phrasings")
    reask_warning_minutes: int = Field(
        default=5, ge=1, le=60,
        description="minutes a re-ask warning waits for the agent's next turn: a turn asking "
                    "for the fact within them counts as sent anyway, none as heeded (KPIs)")
    dialogflow_handoff_tags: list[str] = Field(
        default_factory=lambda: ["handoff"],
        description="Dialogflow CX fulfillment tags whose webhook call requests a hand-off")
    lex_handoff_intents: list[str] = Field(
        default_factory=lambda: ["Handoff"],
        description="Lex V2 intents whose fulfillment requests a hand-off")
    rasa_handoff_actions: list[str] = Field(
        default_factory=lambda: ["action_handoff"],
        description="Rasa actions whose event requests a hand-off")
    twilio_auth_tokens: dict[str, SecretStr] = Field(
        default_factory=dict, description="Twilio auth token per tenant, for X-Twilio-Signature")
    twilio_prompt: str = Field(
        default="Please enter your continuation code, or press star and your account number, "
                "then press the pound key.", max_length=1000,
        description="what a caller hears when the call starts")
    twilio_joined_prompt: str = Field(
        default="Thank you. An agent will be with you shortly.", max_length=1000,
        description="what a caller hears before being put through")
    twilio_join: str = Field(
        default="enqueue:support", pattern=r"^(enqueue|dial|redirect):\S+$",
        description="where a call goes after the code or account: enqueue:<queue>, "
                    "dial:<number or sip: URI>, redirect:<URL>")
    twilio_queue: str = Field(
        default="general", pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
        description="handoff queue of hand-offs asked for by calls without a continuation code")

    @property
    def retention_ms(self) -> int:
        return int(self.retention_days * 86400 * 1000)

    @model_validator(mode="after")
    def _wait_within_command_timeout(self) -> Settings:
        # The client gives up on a connection that answers nothing for redis_timeout: a WAIT
        # allowed longer would take every other request's commands down with it.
        if self.write_ack == "replica" and self.write_ack_timeout >= self.redis_timeout:
            raise ValueError("write_ack_timeout must be less than redis_timeout")
        if self.write_ack == "replica" and self.redis_cluster:
            raise ValueError("write_ack replica needs one primary (with or without sentinels), "
                             "not a cluster")
        return self

    @model_validator(mode="after")
    def _alert_kinds_are_words(self) -> Settings:
        bad = sorted({k for rules in self.alert_rules.values() for k in rules
                      if not ALERT_KIND.match(k)})
        if bad:
            raise ValueError(f"alert_rules: kinds are lower-case words (a-z, 0-9, _ and -, at "
                             f"most 32), not {', '.join(bad)}")
        return self

    @property
    def store_url(self) -> str | None:
        """Where the store is: redis_url, or with sentinels a `redis+sentinel://` URL naming
        them, the service, and redis_url's credentials and database."""
        if not self.redis_sentinels or (self.redis_url or "").startswith(SENTINEL_SCHEME):
            return self.redis_url
        base = urlsplit(self.redis_url or "redis://")
        credentials = base.netloc.rpartition("@")[0]
        hosts = ",".join(a.strip() for a in self.redis_sentinels.split(","))
        return (f"{SENTINEL_SCHEME}{credentials + '@' if credentials else ''}{hosts}/"
                f"{self.redis_sentinel_service}/{base.path.strip('/') or '0'}")
