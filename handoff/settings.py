"""Configuration, from `HANDOFF_*` environment variables or keyword arguments (tests)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_LEXICON: dict[str, list[str]] = {
    "risk": ["lawsuit", "attorney", "lawyer", "sue you", "legal action", "fraud", "police"],
    "frustration": ["cancel my account", "complaint", "ridiculous", "unacceptable",
                    "worst service", "third time", "fed up"],
}
DEFAULT_HUMAN_TERMS = ["agent", "human", "representative", "real person", "operator",
                       "speak to someone", "talk to someone"]


class Settings(BaseSettings):
    """Every knob of the service; see the README's Configuration table."""

    model_config = SettingsConfigDict(env_prefix="HANDOFF_", extra="ignore")

    redis_url: str | None = Field(
        default=None, description="redis:// or rediss:// URL; unset starts the embedded server")
    redis_cluster: bool = Field(
        default=False, description="treat redis_url as a Redis Cluster seed node")
    data_dir: Path = Field(default=Path("handoff-data"), description="embedded Redis data folder")
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    redis_timeout: float = Field(default=2.0, gt=0, description="seconds before a command fails")
    redis_max_connections: int = 256
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
    requests_per_second_per_key: float = Field(
        default=0.0, ge=0,
        description="per process, bursts of twice that; 0 (the default): no limit")
    auth_failures_per_minute: int = Field(
        default=20, ge=1, description="failed authentications one address may make per minute")
    handoff_pending_seconds: int = Field(
        default=3600, ge=10, description="a pending hand-off expires after this long")
    continuation_ttl_seconds: int = Field(default=900, ge=30)
    continuation_digits: int = Field(default=6, ge=6, le=10)
    continuation_max_failures: int = Field(
        default=3, ge=1, description="wrong codes one conversation may enter before it is locked")
    redeem_attempts_per_minute: int = Field(
        default=10, ge=1, description="wrong codes one key or address may enter per minute")
    brief_turns: int = Field(default=50, ge=1, le=500)
    brief_handoffs: int = Field(default=10, ge=1, le=100)
    brief_cache_size: int = Field(
        default=2000, ge=0, description="briefs each process keeps, rebuilt when their ETag moves")
    events_maxlen: int = Field(
        default=1000, ge=100, description="events kept per stream for Last-Event-ID replay")
    sweep_seconds: float = Field(default=15.0, gt=0, description="hand-off expiry sweep period")
    lexicon: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_LEXICON))
    human_request_terms: list[str] = Field(default_factory=lambda: list(DEFAULT_HUMAN_TERMS))
    human_request_threshold: int = Field(default=2, ge=1)
    log_level: str = "INFO"
    public_url: str | None = Field(
        default=None, description="the scheme, host and any path prefix callers use to reach "
                                  "this service (behind a proxy); vendor signatures cover it")
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
