"""The health check's answer."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Check(BaseModel):
    """One dependency the service needs; what it found besides `ok` varies by dependency."""

    model_config = ConfigDict(extra="allow")

    ok: bool
    error: str | None = Field(default=None, description="the kind of failure, when not ok")


class HealthReport(BaseModel):
    """Whether the service can reach its database and its broker."""

    status: Literal["ok", "unavailable"]
    database: Check
    broker: Check
