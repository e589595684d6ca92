"""The vehicle's side of IEEE 2030.5: discovery and the J3072 client simulator."""
