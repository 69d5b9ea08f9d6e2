"""``logctl``: topics, groups, producing and consuming from the command line, noun then verb.

    logctl topic create orders --partitions 3 --replication-factor 1 --config retention.ms=86400000
    logctl topic list | topic describe orders | topic delete orders
    logctl topic alter-config orders --config segment.ms=3600000 --delete-config retention.ms
    printf 'k1:hello\\n' | logctl produce orders --key-separator :
    logctl consume orders --from-beginning -e --format '%p/%o %k=%v\\n'
    logctl group describe orders-app
    logctl group reset-offsets orders-app --all-topics --to-earliest --execute

Flags follow Kafka's command-line tools (``kafka-topics.sh``,
``kafka-console-producer.sh``, ``kafka-console-consumer.sh``,
``kafka-consumer-groups.sh``) and kcat's format tokens.
``-b/--bootstrap-server`` defaults to ``$LOGSERVER_BROKERS``, then
``localhost:9092``. Exit status: 0 on success, 1 for an error from the
cluster (printed as ``logctl: <message>``), 2 for a usage error, 130 after
Ctrl-C, 141 when standard output is closed early (``| head``).

One module per command (``topic``, ``produce``, ``consume``, ``cluster``,
``group``), the format strings in ``output_format``, the group tables in
``group_tables`` and the offset-reset rules in ``offset_reset``, the parser and
error handling in ``main``.
"""
