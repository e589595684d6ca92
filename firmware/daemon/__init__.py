"""The gatekeeper process: its composition root and supervisor (``app``), the CLI, the local
control socket, the parts that talk to the world (``communication``) and the service manager
protocol (``sdnotify``)."""
