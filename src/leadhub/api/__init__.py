"""The HTTP service: FastAPI app, dependencies and routers."""
