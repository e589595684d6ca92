"""The mock board: a circuit model of the EVSE and the vehicle, with a virtual HIL rig."""

from hal.mock.board import MockBoard, open_mock_board

__all__ = ["MockBoard", "open_mock_board"]
