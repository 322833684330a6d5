"""``stream-ner local up|down|status``: a long-lived local Kafka broker and Redis for running pieces by hand.

``up`` starts both on 127.0.0.1 (Kafka on 9092, Redis on 6379 unless told otherwise) and returns; they
keep running after the command exits until ``down``. The defaults match the settings' defaults, so
``stream-ner topics apply``, ``worker``, ``aggregate`` and ``tail`` find them without configuration.
``--brokers 3`` starts a three-node KRaft cluster (ports 9092-9094), on which the topic specs apply as
written: replication factor 3, ``min.insync.replicas`` 2. ``stop-node N`` stops one of its brokers
(``--kill``: SIGKILL, as a crash) and keeps its data; ``start-node N`` starts it again on that data.
"""

from __future__ import annotations

import argparse

_NAME = "local"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``local`` command group."""
    parser = subparsers.add_parser("local", help="start/stop a long-lived local Kafka broker and Redis")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start Kafka and Redis on 127.0.0.1 and leave them running")
    up.add_argument("--kafka-port", type=int, default=9092, help="Kafka client port (default 9092)")
    up.add_argument("--redis-port", type=int, default=6379, help="Redis port (default 6379)")
    up.add_argument(
        "--brokers", type=int, default=1, help="Kafka nodes; node N listens on KAFKA_PORT+N-1 (default 1)"
    )
    up.set_defaults(handler=run_up)
    down = actions.add_parser("down", help="stop the Kafka and Redis started by 'local up'")
    down.set_defaults(handler=run_down)
    status = actions.add_parser("status", help="show whether they run; exit code 3 if one does not")
    status.set_defaults(handler=run_status)
    stop_node = actions.add_parser("stop-node", help="stop one Kafka broker of 'local up', keeping its data")
    stop_node.add_argument("node", type=int, help="broker id, 1..brokers")
    stop_node.add_argument("--kill", action="store_true", help="SIGKILL (a crash) instead of SIGTERM")
    stop_node.set_defaults(handler=run_stop_node)
    start_node = actions.add_parser("start-node", help="start a stopped Kafka broker again on its data")
    start_node.add_argument("node", type=int, help="broker id, 1..brokers")
    start_node.set_defaults(handler=run_start_node)


def run_up(args: argparse.Namespace) -> int:
    """Start whichever of the two is not running yet."""
    from stream_ner import localstack

    if args.brokers < 1:
        raise localstack.LocalStackError(f"--brokers must be 1 or more, not {args.brokers}")
    kafka = localstack.find("kafka", _NAME) or localstack.start_kafka(
        args.kafka_port, name=_NAME, brokers=args.brokers
    )
    try:
        redis = localstack.find("redis", _NAME) or localstack.start_redis(args.redis_port, name=_NAME)
    except localstack.LocalStackError:
        kafka.stop()
        raise
    brokers = max(1, len(kafka.nodes))
    print(f"kafka  {kafka.bootstrap}  ({_plural(brokers)}, pid {kafka.pid}, logs {kafka.log})")
    print(f"redis  {redis.url}  (pid {redis.pid}, logs {redis.log})")
    if brokers != args.brokers:
        print(f"note: the running cluster has {_plural(brokers)}; `stream-ner local down` first to change it")
    if (kafka.port, redis.port) != (9092, 6379) or brokers > 1:
        print(f"export STREAM_NER_KAFKA__BOOTSTRAP_SERVERS={kafka.bootstrap}")
        print(f"export STREAM_NER_REDIS__URL={redis.url}")
    if brokers < 3:
        print(f"export STREAM_NER_TOPICS__REPLICATION_FACTOR={brokers}   # the specs ask for 3 replicas")
    print("stop them with: stream-ner local down")
    return 0


def _plural(brokers: int) -> str:
    return f"{brokers} broker" + ("s" if brokers > 1 else "")


def run_down(args: argparse.Namespace) -> int:
    """Stop both; stopping what is not running is not an error."""
    from stream_ner import localstack

    for kind in ("kafka", "redis"):
        service = localstack.find(kind, _NAME)
        if service is None:
            if (stopped := localstack.recorded(kind, _NAME)) is not None:
                stopped.stop()  # recorded, not running (all brokers stopped): its kept data goes
            print(f"{kind:6} not running")
        else:
            service.stop()
            print(f"{kind:6} stopped ({service.url})")
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print each service's address and PID; 0 when both run, 3 otherwise."""
    from stream_ner import localstack

    code = 0
    for kind in ("kafka", "redis"):
        service = localstack.find(kind, _NAME)
        if service is None:
            print(f"{kind:6} not running")
            code = 3
        else:
            print(f"{kind:6} {service.url}  (pid {service.pid}, logs {service.log})")
    return code


def run_stop_node(args: argparse.Namespace) -> int:
    """Stop one broker of the running cluster; its data stays for ``start-node``."""
    kafka = _cluster(args.node)
    kafka.stop_node(args.node, kill=args.kill)
    print(f"kafka node {args.node} {'killed' if args.kill else 'stopped'}; its data is kept")
    return 0


def run_start_node(args: argparse.Namespace) -> int:
    """Start a stopped broker again and wait until it serves (also the last one of the cluster)."""
    kafka = _cluster(args.node, stopped=True).start_node(args.node)
    node = next(n for n in kafka.nodes if n.node_id == args.node)
    print(f"kafka node {args.node} at {node.address} (pid {node.pid}, logs {node.log})")
    return 0


def _cluster(node: int, *, stopped: bool = False):  # type: ignore[no-untyped-def]
    """The running 'local up' Kafka, checked to have broker ``node``.

    With ``stopped``, also one whose brokers were all stopped (``stop-node``).
    """
    from stream_ner import localstack

    kafka = localstack.find("kafka", _NAME) or (localstack.recorded("kafka", _NAME) if stopped else None)
    if kafka is None:
        raise localstack.LocalStackError("no local Kafka is running; start one with `stream-ner local up`")
    if not any(n.node_id == node for n in kafka.nodes):
        raise localstack.LocalStackError(f"the local Kafka has brokers 1..{len(kafka.nodes)}, not {node}")
    return kafka
