"""create_app(): the FastAPI application `leadhub serve` runs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sqlalchemy import Engine

from leadhub import __version__
from leadhub.api import errors
from leadhub.api.routers import admin, auth, customers, health, leads, workflow
from leadhub.api.routers import knowlarity as knowlarity_router
from leadhub.api.routers import meta as meta_router
from leadhub.config import Settings, get_settings
from leadhub.db.fastpath import StatementPool
from leadhub.db.session import make_engine, make_session_factory
from leadhub.integrations.knowlarity.webhook import make_batcher


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    pool: StatementPool | None = app.state.statement_pool
    if pool is not None:
        await pool.close()


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or make_engine(
        settings.database_url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow
    )
    app = FastAPI(
        lifespan=_lifespan,
        title="leadhub",
        version=__version__,
        description="Lead-to-customer CRM: one customer per phone number, every channel through one intake.",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    # The one-statement webhook path on PostgreSQL (db/fastpath.py); None on SQLite.
    app.state.statement_pool = (
        StatementPool(engine, max_size=settings.db_pool_size) if engine.dialect.name == "postgresql" else None
    )
    # Knowlarity pushes written together (integrations/knowlarity/batching.py); None: one by one.
    app.state.call_batcher = make_batcher(app.state.statement_pool, settings)
    errors.install(app)
    # The Knowlarity push, answered before FastAPI's routing (api/routers/knowlarity.py).
    app.add_middleware(knowlarity_router.KnowlarityPush, state=app.state)
    app.include_router(health.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(leads.router)
    app.include_router(customers.router)
    app.include_router(workflow.router)
    app.include_router(knowlarity_router.router)
    app.include_router(meta_router.router)
    return app


def app_factory() -> FastAPI:
    """For `uvicorn --factory leadhub.api.app:app_factory` (each worker builds its own engine)."""
    return create_app()
