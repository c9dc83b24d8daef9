"""The README's main job: `callscope demo` starts everything on the embedded default, replays the demo
call, shows hints as the customer speaks, prints the console's address and login, stores the call and
exits 0, with topic names set through CALLSCOPE_*_TOPIC (the demo, its replay and every stage agree)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from deploy.runtime import free_port

CUSTOM_TOPICS = {
    "CALLSCOPE_AUDIO_TOPIC": "demo-test.audio",
    "CALLSCOPE_TRANSCRIPTS_TOPIC": "demo-test.transcripts",
    "CALLSCOPE_ASSIST_TOPIC": "demo-test.assist",
    "CALLSCOPE_DEADLETTER_TOPIC": "demo-test.deadletter",
}


def test_the_demo_runs_the_whole_pipeline_on_its_own_topics_and_exits_zero():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLSCOPE_")} | CUSTOM_TOPICS
    callscope = Path(sys.executable).with_name("callscope")
    done = subprocess.run(
        [str(callscope), "demo", "--speed", "0", "--timeout", "240", "--console-port", str(port)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, f"demo exit {done.returncode}\n{out[-3000:]}\n{done.stderr[-3000:]}"
    assert re.search(rf"console: http://127\.0\.0\.1:{port}/wall +sign in as supervisor / \S+", out)
    assert "Stored in PostgreSQL" in out
    stored = out.split("Stored in PostgreSQL", 1)[1]
    assert re.search(r"final segments: ([1-9]\d*)", stored)
    # The customer's "I want to cancel my account" gives the retention hint.
    assert re.search(r"hint rule=retention-cancel matched='cancel my account' \(customer, on ", stored)
    assert "end=hangup" in stored
