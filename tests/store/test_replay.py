"""Replay of stored calls with a new rule-set version, against a real PostgreSQL (embedded)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from deploy.cli import main as cli_main
from store.batch import merge
from store.models import AssistEvent, RuleSetVersion
from store.replay import ReplayError, run_replay
from store.repository import Repository
from store.sink import row_of
from tests import store_events as ev

EXAMPLE = resources.files("analyze").joinpath("rules.example.yaml").read_text(encoding="utf-8")


def _rules(tmp_path: Path, version: str, extra: str = "") -> Path:
    path = tmp_path / f"rules-{version}.yaml"
    path.write_text(re.sub(r"(?m)^version: .*$", f'version: "{version}"', EXAMPLE) + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module", autouse=True)
async def _stored_call(engine: AsyncEngine) -> None:
    # A call stored live: a customer who wants to cancel, with a card number said aloud.
    events = [
        ev.started("rp1"),
        ev.final("rp1", "agent", 0, "Thank you for calling, how can I help you today?"),
        ev.final("rp1", "customer", 2_000, "I want to cancel my account, my card is 4111 1111 1111 1111."),
        ev.ended("rp1"),
    ]
    await Repository(engine).write(merge([r for r in map(row_of, events) if r is not None]))


async def _assist(engine: AsyncEngine, call_id: str) -> list[Any]:
    async with engine.connect() as conn:
        query = select(AssistEvent.__table__).where(AssistEvent.call_id == call_id)
        return list((await conn.execute(query)).all())


async def test_replay_writes_the_new_versions_events_beside_the_old_and_is_idempotent(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    first = await run_replay(engine, _rules(tmp_path, "replay-a"), call_ids=["rp1"])
    assert first.calls == 1 and first.segments == 2 and first.hints >= 1
    rows_a = await _assist(engine, "rp1")
    assert {r.rule_version for r in rows_a} == {"replay-a"} and {r.origin for r in rows_a} == {"replay"}
    assert "retention-cancel" in {r.rule_id for r in rows_a}

    again = await run_replay(engine, _rules(tmp_path, "replay-a"), call_ids=["rp1"])
    assert again.hints == first.hints
    assert len(await _assist(engine, "rp1")) == len(rows_a)  # same version: the same rows

    await run_replay(engine, _rules(tmp_path, "replay-b"), call_ids=["rp1"])
    rows = await _assist(engine, "rp1")
    assert {r.rule_version for r in rows} == {"replay-a", "replay-b"}
    assert len(rows) == 2 * len(rows_a)
    assert all("4111" not in r.matched for r in rows)
    async with engine.connect() as conn:
        stored = dict((await conn.execute(select(RuleSetVersion.version, RuleSetVersion.content))).all())
    assert stored["replay-b"] is not None and "replay-b" in stored["replay-b"]


async def test_a_version_reused_with_other_content_is_refused(engine: AsyncEngine, tmp_path: Path) -> None:
    await run_replay(engine, _rules(tmp_path, "replay-c"), call_ids=["rp1"], dry_run=False)
    changed = _rules(tmp_path, "replay-c", extra="\n# edited without bumping the version\n")
    with pytest.raises(ReplayError, match="bump"):
        await run_replay(engine, changed, call_ids=["rp1"])


async def test_an_unknown_call_is_an_error_and_a_dry_run_writes_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    with pytest.raises(ReplayError, match="no stored call"):
        await run_replay(engine, _rules(tmp_path, "replay-d"), call_ids=["nope"])
    before = len(await _assist(engine, "rp1"))
    result = await run_replay(engine, _rules(tmp_path, "replay-e"), call_ids=["rp1"], dry_run=True)
    assert result.hints >= 1 and len(await _assist(engine, "rp1")) == before


def test_cli_replays_a_time_range(
    database_url: str, engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.setenv("CALLSCOPE_DATABASE_URL", database_url)
    rules = _rules(tmp_path, "replay-cli")
    code = cli_main(
        [
            "analyze",
            "replay",
            "--rules",
            str(rules),
            "--since",
            "2020-01-01T00:00:00+00:00",
            "--no-embeddings",
        ]
    )
    assert code == 0
    assert "with rule-set version replay-cli" in capsys.readouterr().out
