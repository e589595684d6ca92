"""The reference board (Raspberry Pi 4/5 + EVSE HAT): the board (``board``), its SPI ADC
(``adc``), its sysfs PWM pilot (``pwm``) and the GPIO libraries it loads lazily (``libs``).
docs/hardware.md has the circuit and the pin map."""
