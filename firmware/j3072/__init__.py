"""SAE J3072: the decision whether a vehicle's inverter may discharge, and its session."""
