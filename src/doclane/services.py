"""The long-lived resources one process shares, created in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends
from starlette.requests import HTTPConnection

from doclane.events import EventBus
from doclane.jobs import JobStore
from doclane.settings import Settings
from doclane.worker import Worker


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    store: JobStore
    bus: EventBus
    worker: Worker | None  # None when this process only serves the API


def get_services(connection: HTTPConnection) -> Services:
    return cast(Services, connection.app.state.services)


ServicesDep = Annotated[Services, Depends(get_services)]
