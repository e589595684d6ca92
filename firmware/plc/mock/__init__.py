"""What mock mode runs on the PLC side, inside the library as a mock board's pins would be:
a pair of simulated Qualcomm modems on one powerline (``modems``), the vehicle's SLAC client
(``pev_slac``) and the world that ties them to the mock board's simulated vehicle
(``world``). The daemon imports it only for ``[plc] interface = "mock"``."""
