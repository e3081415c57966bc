"""A small FastAPI service that serves artifacts loaded by alias: what
tests/ecosystem/test_asgi_service.py runs under uvicorn, in a process of its own.

Configured by environment variables, as a deployed service would be:
``SERVICE_ENDPOINT_URL`` (where AWS is: the tests' proxy in front of moto),
``SERVICE_BUCKET``, ``SERVICE_TABLE``, ``SERVICE_CACHE_DIR`` (none: no LocalCache)
and ``SERVICE_WATCH_INTERVAL`` (seconds between polls of each alias).
"""

from __future__ import annotations

import os
from typing import Any

from aiobotocore.config import AioConfig
from fastapi import FastAPI, Request

import versioned_async as va
from versioned_async.asgi import Follow, LiveArtifacts
from versioned_async.testing import set_testing

set_testing(True)  # retries without their backoff: an outage fails a call at once


def open_repository() -> va.Repository:
    cache_dir = os.environ.get("SERVICE_CACHE_DIR")
    return va.Repository(
        aws_region="us-east-1",
        s3_bucket=os.environ["SERVICE_BUCKET"],
        dynamodb_table_name=os.environ["SERVICE_TABLE"],
        endpoint_url=os.environ["SERVICE_ENDPOINT_URL"],
        client_config=AioConfig(
            retries={"mode": "standard", "total_max_attempts": 2},
            connect_timeout=2,
            read_timeout=5,
        ),
        cache=va.LocalCache(cache_dir) if cache_dir else None,
    )


#: the model as handlers use it: here its text, as a real service would unpickle it
MODEL = Follow("fraud-model", "prod", load=lambda content: content.decode())

artifacts = LiveArtifacts(
    open_repository,
    {"model": MODEL, "rules": ("rules", "prod")},
    interval=float(os.environ.get("SERVICE_WATCH_INTERVAL", "30")),
)
app = FastAPI(lifespan=artifacts.lifespan)


@app.get("/predict")
async def predict(request: Request) -> dict[str, str]:
    model = artifacts[MODEL]  # typed: Loaded[str]
    rules = request.state.artifacts["rules"]  # the same, through the lifespan state
    return {
        "model": model.value,
        "version": model.version,
        "sha256": model.sha256,
        "rules": rules.value.decode(),
    }


@app.get("/ready")
async def ready() -> dict[str, Any]:
    return {
        "ready": artifacts.ready,
        "versions": artifacts.versions,
        "failures": artifacts.failures,
    }
