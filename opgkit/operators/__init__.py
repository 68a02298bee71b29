"""The network's long-running operators: relayer, watchtower and keeper.

Each is an ``ape run`` script over a module here. They share one runtime (``runtime``): durable state in
SQLite (``store``), transactions sent at most once across crashes (``sending``), JSON or text logs, signals
handled at a safe point, exit codes 0 ok / 1 alert / 2 error, and a Prometheus endpoint (``metrics``).
"""
