"""Property 12: backend performance consistency.

Speed is measured by the benchmarks, not here; what a test can pin down for any input is that
the hot queries stay index-driven: for every combination of filters, cursors and limits, the
database plans an index search (no full table scan, no sort of all matching rows). A query that
passes here costs the same on a table of ten rows and of ten million.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from sqlalchemy import text

from onair.context import AppContext
from onair.domain.streams import Status
from onair.store import chat as chat_store
from onair.store import retention as retention_store
from onair.store import streams as streams_store

UUID = "019a0b2e-1972-7edf-87a1-c3baf88a72e9"
WHEN = datetime(2026, 5, 1, tzinfo=UTC)

queries = st.one_of(
    st.builds(lambda status, seller, cursor, limit: ("stream_sessions", streams_store.list_query(
        status=status, seller_id=seller, before_id=cursor, limit=limit)),
        st.one_of(st.none(), st.sampled_from(list(Status))),
        st.one_of(st.none(), st.just("seller-1")), st.one_of(st.none(), st.just(UUID)),
        st.integers(1, 1000)),
    st.builds(lambda before, limit: ("chat_messages", chat_store.history_query(UUID, before, limit)),
              st.one_of(st.none(), st.integers(0, 10**9)), st.integers(1, 1000)),
    st.builds(lambda after, limit: ("chat_messages", chat_store.resync_query(UUID, after, limit)),
              st.integers(0, 10**9), st.integers(1, 1000)),
    st.just(("stream_sessions", streams_store.hostless_query(WHEN))),
    st.just(("stream_sessions", streams_store.paused_since_query(WHEN))),
    st.just(("stream_viewers", streams_store.stale_viewers_query(WHEN))),
    # retention (issue 11 §5): the prune's scans start at the oldest due row of their index
    st.builds(lambda batch: ("agora_tokens", retention_store.expired_tokens_query(WHEN, batch)),
              st.integers(1, 100_000)),
    st.builds(lambda batch: ("stream_viewers", retention_store.left_viewers_query(WHEN, batch)),
              st.integers(1, 100_000)),
    st.builds(lambda batch: ("stream_sessions", retention_store.unpurged_streams_query(WHEN, batch)),
              st.integers(1, 100_000)),
    st.builds(lambda batch: ("chat_messages", retention_store.stream_chat_query(UUID, batch)),
              st.integers(1, 100_000)),
)


def sqlite_plan_ok(plan: list[str], table: str) -> bool:
    for line in plan:
        if "TEMP B-TREE" in line:
            return False  # sorting every match: cost grows with the table
        if line.startswith(f"SCAN {table}") and "INDEX" not in line:
            return False
    return True


async def test_hot_queries_are_index_driven(ctx: AppContext) -> None:
    """Property 12: backend performance consistency (plans for arbitrary inputs)."""
    plans: list[tuple[str, list[str]]] = []

    @hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(queries)
    def collect(case: tuple[str, Any]) -> None:
        plans.append(case)

    collect()
    async with ctx.db.read() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            await conn.execute(text("SET LOCAL enable_sort = off"))
        for table, query in plans:
            compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            if conn.dialect.name == "sqlite":
                rows = (await conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))).all()
                plan = [row[-1] for row in rows]
                assert sqlite_plan_ok(plan, table), (str(compiled), plan)
            else:
                rows = (await conn.execute(text(f"EXPLAIN {compiled}"))).all()
                plan = [row[0] for row in rows]
                # With seq scans and sorts priced out, a plan that still has one has no index.
                assert not any("Seq Scan" in line or line.lstrip("-> ").startswith("Sort")
                               for line in plan), (str(compiled), plan)
                assert any("Index" in line for line in plan), (str(compiled), plan)
