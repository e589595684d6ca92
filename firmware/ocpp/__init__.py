"""OCPP to the operator's charging-station management system (docs/ocpp.md)."""
