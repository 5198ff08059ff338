"""Multi-host runs for the scripts: the same command on every host, each doing its share.

    from tokcomp_jax import hosts        # defines --distributed, --coordinator, --num_processes, --process_id
    hosts.join()                         # first thing in main(): jax.distributed.initialize() when asked
    hosts.barrier("labels written")      # every process waits here for all (no-op on one process)

On a TPU VM pod `--distributed` alone finds the other hosts; on one machine or a cluster without
auto-detection, `--coordinator HOST:PORT --num_processes N --process_id I` names them (the tests
start N processes on localhost so).
"""

from __future__ import annotations

import jax
from absl import flags
from jax.experimental import multihost_utils

_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "multi-host: call jax.distributed.initialize() first")
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "with --distributed off a TPU pod / cluster: host:port of process 0 (with the next two)"
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "with --coordinator: how many processes")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "with --coordinator: this process's index")


def join() -> None:
    """Join the other processes (with --distributed) and wait until every one has joined."""
    if _DISTRIBUTED.value:
        jax.distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
        multihost_utils.sync_global_devices("started")  # every host's collectives set up together


def barrier(name: str) -> None:
    """Block until every process reaches the barrier of this name; a no-op on one process."""
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)
