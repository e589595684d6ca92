"""A simulated Modbus energy meter for tests, benches and the lab: pymodbus's own server
serving a register map (``server``), and an RS-485 line between two pseudo-terminals that
takes the time the baud rate takes and can garble or drop what crosses it (``line``)."""
