"""PostgreSQL behind PgBouncer in transaction mode (issue 11 §7).

The chat, stream, token and concurrency suites also run through a real PgBouncer (the `pgbouncer`
backend of tests/conftest.py, with ``ONAIR_DB_PREPARED_STATEMENTS=false``). These tests show that
the pooler there really moves a client's transactions between server connections — cached
prepared statements break — and that the setting is what makes onair work behind it.
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from onair.store.db import Database
from tests.pgbouncer import fresh_database


async def test_concurrent_transactions_work_without_prepared_statements(pgbouncer_url: str) -> None:
    from sqlalchemy import text

    from tests.conftest import POSTGRES_URL

    async with fresh_database(POSTGRES_URL, pgbouncer_url) as url:
        db = Database(url, pool_size=8, timeout=10, prepared_statements=False)

        async def work(i: int) -> int:
            async with db.write() as conn:
                return int((await conn.execute(text("SELECT CAST(:i AS int) + 1"),
                                               {"i": i})).scalar_one())

        try:
            results = await asyncio.gather(*(work(i) for i in range(200)))
        finally:
            await db.close()
    assert results == [i + 1 for i in range(200)]


@pytest.mark.parametrize("prepared", [True, False])
async def test_a_second_process_behind_the_pooler_needs_the_setting(
    pgbouncer_url: str, prepared: bool
) -> None:
    """The statements one process prepared stay on the server connection the next process gets
    (PgBouncer hands out the most recently used one), so a restarted worker's first cached
    statement collides: "prepared statement __asyncpg_stmt_1__ already exists"."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from tests.conftest import POSTGRES_URL

    script = (
        "import asyncio, sys\n"
        "from sqlalchemy import text\n"
        "from onair.store.db import Database\n"
        "async def main():\n"
        "    db = Database(sys.argv[1], prepared_statements=sys.argv[2] == '1')\n"
        "    async with db.read() as conn:\n"
        "        await conn.execute(text('SELECT 1'))\n"
        "    await db.close()\n"
        "asyncio.run(main())\n"
    )
    async with fresh_database(POSTGRES_URL, pgbouncer_url) as url:
        for _ in range(2):  # the first process leaves its statements on the server connection
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", script, url, "1" if prepared else "0",
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
            _, err = await proc.communicate()
            if proc.returncode != 0:
                break
        db = Database(url, prepared_statements=prepared)
        try:
            async with db.read() as conn:
                await conn.execute(text("SELECT 2"))
            third_ok = True
        except DBAPIError:
            third_ok = False
        finally:
            await db.close()
    if prepared:
        assert proc.returncode != 0 or not third_ok, "cached statements survived the pooler"
        assert proc.returncode == 0 or b"prepared statement" in err, err.decode()[-800:]
    else:
        assert proc.returncode == 0, err.decode()[-800:]
        assert third_ok


def test_a_schema_cannot_go_through_a_transaction_pooler() -> None:
    from pydantic import ValidationError

    from onair.settings import Settings

    with pytest.raises(ValidationError, match="ONAIR_DATABASE_SCHEMA"):
        Settings(_env_file=None, database_schema="tenant", db_prepared_statements=False)
