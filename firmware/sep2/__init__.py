"""IEEE 2030.5 (Smart Energy Profile 2.0): the resources the EVSE serves and their transport."""
