"""HomePlug Green PHY on the pilot: the MME codec, keys, and (to come) transport, modem
client and the SLAC state machine (reference/homeplug-slac.md)."""
