"""PLC simulators: a mock QCA7000 modem pair with the line between them, and a PEV SLAC client."""
