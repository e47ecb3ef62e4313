"""Message delivery in Flower's Simulation Engine at thousands of owners.

Flower 1.42's engine (``flwr.server.superlink.fleet.vce.vce_api``) hands messages to
its workers from a loop that asks the link state, every 0.1 s, for each *registered
node* in turn whether a message waits for it; each question scans every stored
message and re-validates it. With 10,000 owners and 1,000 messages in flight that is
10^7 validations per sweep, and the coordinator's thread spends most of a round
waiting for the lock it holds. :func:`deliver_only_to_waiting_nodes` replaces that
loop (the module attribute the engine starts its thread from) with one that asks
only for the nodes that have an undelivered message: the same ``get_message_ins``
calls, the same validation, once per waiting message.

Written by hand because the engine offers no hook; installed only by
:func:`simulations.runner.simulate` and only for the Flower version it was written
against (any other version keeps Flower's own loop).
"""

from __future__ import annotations

import threading
from queue import Queue

PATCHED_VERSIONS = ("1.42.",)
_flowers_loop = None  # Flower's own loop, for a link state that is not in memory


def _waiting_nodes(state, nodes_mapping) -> list[int]:
    """Nodes of this simulation with at least one message not yet delivered."""
    with state.lock:
        waiting = {m.metadata.dst_node_id for m in state.message_ins_store.values()
                   if m.metadata.delivered_at == ""}
    return [node for node in waiting if node in nodes_mapping]


def _add_waiting_messages_to_queue(state, queue: Queue, nodes_mapping,
                                   f_stop: threading.Event) -> None:
    """Flower's ``add_messages_to_queue``, asking only the nodes that have mail."""
    if not (hasattr(state, "message_ins_store") and hasattr(state, "lock")):
        return _flowers_loop(state, queue, nodes_mapping, f_stop)
    while not f_stop.is_set():
        for node_id in _waiting_nodes(state, nodes_mapping):
            for msg in state.get_message_ins(node_id=node_id, limit=1):
                queue.put(msg)
        f_stop.wait(0.1)


def deliver_only_to_waiting_nodes() -> bool:
    """Install the loop in Flower's engine; False (nothing changed) on another Flower."""
    from importlib.metadata import version

    from flwr.server.superlink.fleet.vce import vce_api
    from flwr.server.superlink.linkstate.in_memory_linkstate import InMemoryLinkState

    if not version("flwr").startswith(PATCHED_VERSIONS) or \
            not hasattr(vce_api, "add_messages_to_queue") or \
            not hasattr(InMemoryLinkState, "get_message_ins"):
        return False
    global _flowers_loop
    if vce_api.add_messages_to_queue is not _add_waiting_messages_to_queue:
        _flowers_loop = vce_api.add_messages_to_queue
        vce_api.add_messages_to_queue = _add_waiting_messages_to_queue
    return True
