"""A throwaway Faust app for tests/integration/test_broker_contract.py: counts records per key into a table.

    COUNTER_BOOTSTRAP=host:port COUNTER_APP_ID=... COUNTER_TOPIC=... COUNTER_OUT=/path/state.json \
    COUNTER_DATADIR=/tmp/... COUNTER_WORKER_ID=counter-1 \
    python -m faust -A tests.support.contract_apps.counter worker -l warn

Every 0.2 s it writes {"counts": {key: n}, "assigned": [partitions]} to COUNTER_OUT (atomically), so
the test can read the table without any API. The table lives in memory only: after a restart its
contents can come only from the changelog topic (Faust table recovery).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import faust

from streams.broker_workarounds import static_membership

PARTITIONS = int(os.environ.get("COUNTER_PARTITIONS", "2"))
OUT = Path(os.environ["COUNTER_OUT"])

app = faust.App(
    os.environ["COUNTER_APP_ID"],
    broker=f"kafka://{os.environ['COUNTER_BOOTSTRAP']}",
    store="memory://",
    datadir=os.environ["COUNTER_DATADIR"],
    topic_partitions=PARTITIONS,
    topic_replication_factor=1,
    web_port=int(os.environ.get("COUNTER_WEB_PORT", "6066")),
    web_host="127.0.0.1",
    # Defect 1 of the embedded broker: a worker restarted after a crash only gets its partitions back
    # because it rejoins with the same static group.instance.id.
    **static_membership(os.environ.get("COUNTER_WORKER_ID", "counter-1"), session_timeout=10.0, heartbeat_interval=1.0),
)

source = app.topic(os.environ["COUNTER_TOPIC"], key_type=str, value_type=str, partitions=PARTITIONS)
counts = app.Table("counts", default=int, partitions=PARTITIONS)


@app.agent(source)
async def count(stream):
    async for key, _value in stream.items():
        counts[key] += 1


@app.timer(0.2)
async def dump_state() -> None:
    assigned = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == source.get_topic_name())
    state = {"counts": dict(counts.items()), "assigned": assigned}
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, sort_keys=True))
    tmp.replace(OUT)
