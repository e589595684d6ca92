"""PLC test tools over real sockets: the namespace topology and its parties (the mock modem
pair and the PEV SLAC client of ``firmware.plc.mock``), a flooder, ping6 and the SLAC bench."""
