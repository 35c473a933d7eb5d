"""Shared helpers for the benchmark scripts: a scratch PostgreSQL database and the machine's description."""

from __future__ import annotations

import os
import platform
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("LEADHUB_SHARED_DIR", REPO.parent / "shared"))
ADMIN_URL = os.environ.get("LEADHUB_BENCH_DATABASE_URL", "postgresql://root@127.0.0.1:5432/test")


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq(ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq(ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def machine() -> str:
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    pg = subprocess.run(["psql", "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return (
        f"{datetime.now(UTC):%Y-%m-%d} · {platform.system()} {platform.machine()} · {os.cpu_count()} cores · "
        f"{cpu} · Python {platform.python_version()} · {pg}"
    )


def pgbench_intake(url: str, seconds: int, clients: int) -> float:
    """The raw-SQL intake anchor: ../shared/bench/intake.pgb under pgbench; returns transactions/s."""
    import re

    out = subprocess.run(
        ["pgbench", "-n", "-c", str(clients), "-j", "2", "-T", str(seconds), "-f",
         str(SHARED / "bench" / "intake.pgb"), libpq(url)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"tps = ([\d.]+)", out)
    assert match, out
    return float(match.group(1))
