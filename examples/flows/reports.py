"""Business reports."""

from __future__ import annotations

from enum import Enum

import prefect
from pydantic import BaseModel, Field


class Period(str, Enum):
    day = "day"
    week = "week"
    month = "month"


class Recipients(BaseModel):
    emails: list[str] = Field(default_factory=list, description="Who gets the report.")
    slack_channel: str | None = None


@prefect.task
def render(period: Period) -> str:
    return f"report for the last {period.value}"


@prefect.flow
def build_report(period: Period = Period.day, recipients: Recipients | None = None) -> str:
    """Render the sales report for a period and send it to its recipients."""
    text = render(period)
    print(text, recipients)
    return text
