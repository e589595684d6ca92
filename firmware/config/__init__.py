"""Reading the config file's sections: ``reader.SectionReader`` gives each package typed,
range-checked access to its own section and collects every problem as ``section.key: why``.
The table of sections and the file itself are the daemon's (``firmware.daemon.config``)."""
