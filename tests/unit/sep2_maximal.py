"""Maximal bodies a vehicle may PUT or POST: every element and attribute the IEEE 2030.5-2018
schema allows for the resource, in schema order, written out by hand (not derived from the
firmware's models, so that a model missing an element fails against them).

``UNUSED`` lists the optional elements the V2G-AC profile does not use that real vehicle stacks
were seen to send; each must be accepted on its own (docs/v2g-ac-profile.md, "XML hardening").
"""

from __future__ import annotations

from lxml import etree

NS = "urn:ieee:std:2030.5:ns"
LFDI = "3E4F45AB31EDFE5B67E343E5E4562E31984E23E5"


def _q(name: str, value: int) -> str:
    return f"<{name}><multiplier>0</multiplier><value>{value}</value></{name}>"


def _pf(name: str) -> str:
    return f"<{name}><displacement>90</displacement><multiplier>-2</multiplier></{name}>"


def der_settings() -> bytes:
    return (
        f'<DERSettings xmlns="{NS}" href="/edev/0/der/0/derg" subscribable="0">'
        "<modesEnabled>00100003</modesEnabled><setESDelay>30000</setESDelay>"
        "<setESHighFreq>6010</setESHighFreq><setESHighVolt>10500</setESHighVolt>"
        "<setESLowFreq>5950</setESLowFreq><setESLowVolt>9170</setESLowVolt>"
        "<setESRampTms>30000</setESRampTms><setESRandomDelay>0</setESRandomDelay>"
        "<setGradW>100</setGradW>"
        + _q("setMaxA", 32)
        + _q("setMaxAh", 200)
        + _q("setMaxChargeRateVA", 7200)
        + _q("setMaxChargeRateW", 7200)
        + _q("setMaxDischargeRateVA", 7200)
        + _q("setMaxDischargeRateW", 7000)
        + _q("setMaxV", 264)
        + _q("setMaxVA", 7200)
        + _q("setMaxVar", 3000)
        + _q("setMaxVarNeg", -3000)
        + _q("setMaxW", 7000)
        + _q("setMaxWh", 60000)
        + _pf("setMinPFOverExcited")
        + _pf("setMinPFUnderExcited")
        + _q("setMinV", 211)
        + "<setSoftGradW>100</setSoftGradW>"
        + _q("setVNom", 240)
        + _q("setVRef", 240)
        + _q("setVRefOfs", 0)
        + "<updatedTime>1700000000</updatedTime></DERSettings>"
    ).encode()


def device_information(lfdi: str = LFDI) -> bytes:
    return (
        f'<DeviceInformation xmlns="{NS}" href="/edev/0/di" pollRate="900">'
        "<DRLCCapabilities>"
        + _q("averageEnergy", 1000)
        + _q("maxDemand", 7200)
        + "<optionsImplemented>00000000</optionsImplemented></DRLCCapabilities>"
        "<functionsImplemented>0000000000100177</functionsImplemented>"
        "<gpsLocation><lat>37.7749</lat><lon>-122.4194</lon></gpsLocation>"
        f"<lFDI>{lfdi}</lFDI><mfDate>1700000000</mfDate><mfHwVer>1</mfHwVer><mfID>1</mfID>"
        "<mfInfo>J3072;date=2025-06-01</mfInfo><mfModel>ISM-TEST-0001</mfModel>"
        "<mfSerNum>VIN0000000000001</mfSerNum><primaryPower>2</primaryPower>"
        "<secondaryPower>0</secondaryPower>"
        '<SupportedLocaleListLink href="/edev/0/di/loc" all="1"/>'
        "<swActTime>1700000000</swActTime><swVer>1.0</swVer></DeviceInformation>"
    ).encode()


def der_capability() -> bytes:
    return (
        f'<DERCapability xmlns="{NS}" href="/edev/0/der/0/dercap">'
        "<modesSupported>07F7FDFF</modesSupported><rtgAbnormalCategory>3</rtgAbnormalCategory>"
        + _q("rtgMaxA", 32)
        + _q("rtgMaxAh", 200)
        + _q("rtgMaxChargeRateVA", 7200)
        + _q("rtgMaxChargeRateW", 7200)
        + _q("rtgMaxDischargeRateVA", 7200)
        + _q("rtgMaxDischargeRateW", 7000)
        + _q("rtgMaxV", 264)
        + _q("rtgMaxVA", 7200)
        + _q("rtgMaxVar", 3000)
        + _q("rtgMaxVarNeg", 3000)
        + _q("rtgMaxW", 7000)
        + _q("rtgMaxWh", 60000)
        + _pf("rtgMinPFOverExcited")
        + _pf("rtgMinPFUnderExcited")
        + _q("rtgMinV", 211)
        + "<rtgNormalCategory>1</rtgNormalCategory>"
        + _pf("rtgOverExcitedPF")
        + _q("rtgOverExcitedW", 6500)
        + _q("rtgReactiveSusceptance", 0)
        + _pf("rtgUnderExcitedPF")
        + _q("rtgUnderExcitedW", 6500)
        + _q("rtgVNom", 240)
        + "<type>81</type></DERCapability>"
    ).encode()


def der_availability() -> bytes:
    return (
        f'<DERAvailability xmlns="{NS}" href="/edev/0/der/0/dera" subscribable="0">'
        "<availabilityDuration>3600</availabilityDuration>"
        "<maxChargeDuration>7200</maxChargeDuration><readingTime>1700000000</readingTime>"
        "<reserveChargePercent>1000</reserveChargePercent><reservePercent>2000</reservePercent>"
        + _q("statVarAvail", 3000)
        + _q("statWAvail", 7000)
        + "</DERAvailability>"
    ).encode()


def _status(name: str, value: str) -> str:
    return f"<{name}><dateTime>1700000000</dateTime><value>{value}</value></{name}>"


def der_status() -> bytes:
    return (
        f'<DERStatus xmlns="{NS}" href="/edev/0/der/0/ders" subscribable="0">'
        "<alarmStatus>00000000</alarmStatus>"
        + _status("genConnectStatus", "03")
        + _status("inverterStatus", "0")
        + _status("localControlModeStatus", "0")
        + _status("manufacturerStatus", "OK")
        + _status("operationalModeStatus", "2")
        + "<readingTime>1700000001</readingTime>"
        + _status("stateOfChargeStatus", "5000")
        + _status("storageModeStatus", "1")
        + _status("storConnectStatus", "03")
        + "</DERStatus>"
    ).encode()


def power_status() -> bytes:
    return (
        f'<PowerStatus xmlns="{NS}" href="/edev/0/ps" pollRate="900">'
        "<batteryStatus>1</batteryStatus><changedTime>1700000000</changedTime>"
        "<currentPowerSource>1</currentPowerSource>"
        "<estimatedChargeRemaining>5000</estimatedChargeRemaining>"
        "<estimatedTimeRemaining>3600</estimatedTimeRemaining><PEVInfo>"
        + _q("chargingPowerNow", 7200)
        + _q("energyRequestNow", 30000)
        + _q("maxForwardPower", 7200)
        + "<minimumChargingDuration>3600</minimumChargingDuration>"
        "<targetStateOfCharge>8000</targetStateOfCharge>"
        "<timeChargeIsNeeded>1700030000</timeChargeIsNeeded>"
        "<timeChargingStatusPEV>1700000000</timeChargingStatusPEV></PEVInfo>"
        "<sessionTimeOnBattery>0</sessionTimeOnBattery>"
        "<totalTimeOnBattery>0</totalTimeOnBattery></PowerStatus>"
    ).encode()


def _reading(value: int) -> str:
    return (
        '<Reading href="/mup/0/r" subscribable="0"><consumptionBlock>0</consumptionBlock>'
        "<qualityFlags>0001</qualityFlags>"
        "<timePeriod><duration>1</duration><start>1700000000</start></timePeriod>"
        f"<touTier>0</touTier><value>{value}</value><localID>01</localID></Reading>"
    )


READING_TYPE = (
    "<ReadingType><accumulationBehaviour>12</accumulationBehaviour>"
    "<calorificValue><multiplier>0</multiplier><unit>0</unit><value>1</value></calorificValue>"
    "<commodity>1</commodity>"
    "<conversionFactor><multiplier>0</multiplier><unit>0</unit><value>1</value>"
    "</conversionFactor><dataQualifier>0</dataQualifier><flowDirection>1</flowDirection>"
    "<intervalLength>1</intervalLength><kind>37</kind>"
    "<maxNumberOfIntervals>10</maxNumberOfIntervals>"
    "<numberOfConsumptionBlocks>0</numberOfConsumptionBlocks>"
    "<numberOfTouTiers>0</numberOfTouTiers><phase>0</phase>"
    "<powerOfTenMultiplier>0</powerOfTenMultiplier><subIntervalLength>1</subIntervalLength>"
    "<supplyLimit>7200</supplyLimit><tieredConsumptionBlocks>false</tieredConsumptionBlocks>"
    "<uom>38</uom></ReadingType>"
)


def _mirror_meter_reading(root: bool) -> str:
    xmlns = f' xmlns="{NS}"' if root else ""
    return (
        f'<MirrorMeterReading{xmlns} href="/mup/0/mr/0"><mRID>0A0B0C0D</mRID>'
        "<description>W</description><version>0</version>"
        "<lastUpdateTime>1700000001</lastUpdateTime>"
        '<MirrorReadingSet href="/mup/0/rs/0"><mRID>0A0B0C0E</mRID>'
        "<description>last second</description><version>0</version>"
        "<timePeriod><duration>1</duration><start>1700000000</start></timePeriod>"
        + _reading(7100)
        + _reading(7200)
        + "</MirrorReadingSet><nextUpdateTime>1700000002</nextUpdateTime>"
        + _reading(7200)
        + READING_TYPE
        + "</MirrorMeterReading>"
    )


def mirror_meter_reading() -> bytes:
    return _mirror_meter_reading(root=True).encode()


def mirror_usage_point(lfdi: str = LFDI) -> bytes:
    return (
        f'<MirrorUsagePoint xmlns="{NS}" href="/mup/0"><mRID>0A0B0C0F</mRID>'
        "<description>PEV</description><version>0</version><roleFlags>000D</roleFlags>"
        f"<serviceCategoryKind>0</serviceCategoryKind><status>1</status>"
        f"<deviceLFDI>{lfdi}</deviceLFDI>"
        + _mirror_meter_reading(root=False)
        + "<postRate>1</postRate></MirrorUsagePoint>"
    ).encode()


def response(lfdi: str = LFDI, tag: str = "DERControlResponse") -> bytes:
    return (
        f'<{tag} xmlns="{NS}" href="/rsps/0/rsp/0"><createdDateTime>1700000000</createdDateTime>'
        f"<endDeviceLFDI>{lfdi}</endDeviceLFDI><status>1</status>"
        f"<subject>{'AB' * 16}</subject></{tag}>"
    ).encode()


def subscription(resource: str = "/edev/0/derp/0/derc", uri: str = "https://[::1]:1/n") -> bytes:
    return (
        f'<Subscription xmlns="{NS}" href="/edev/0/sub/0">'
        f"<subscribedResource>{resource}</subscribedResource>"
        "<Condition><attributeIdentifier>0</attributeIdentifier>"
        "<lowerThreshold>-140737488355328</lowerThreshold>"
        "<upperThreshold>140737488355328</upperThreshold></Condition>"
        "<encoding>0</encoding><level>+S1</level><limit>1</limit>"
        f"<notificationURI>{uri}</notificationURI></Subscription>"
    ).encode()


MAXIMAL = {
    "DERSettings": der_settings,
    "DeviceInformation": device_information,
    "DERCapability": der_capability,
    "DERAvailability": der_availability,
    "DERStatus": der_status,
    "PowerStatus": power_status,
    "MirrorUsagePoint": mirror_usage_point,
    "MirrorMeterReading": mirror_meter_reading,
    "Response": lambda: response(tag="Response"),
    "DERControlResponse": response,
    "Subscription": subscription,
}

# (document, path below it): optional elements the profile does not use, seen from real stacks
READING = "Reading"
READING_TYPE_PATH = "ReadingType"
UNUSED: list[tuple[str, str]] = [
    ("DERSettings", "setVNom"),
    ("DeviceInformation", "DRLCCapabilities"),
    ("DeviceInformation", "gpsLocation"),
    ("DeviceInformation", "SupportedLocaleListLink"),
    ("MirrorMeterReading", "MirrorReadingSet"),
    ("MirrorMeterReading", f"{READING}/consumptionBlock"),
    ("MirrorMeterReading", f"{READING}/touTier"),
    ("MirrorMeterReading", f"{READING}/localID"),
    *(
        ("MirrorMeterReading", f"{READING_TYPE_PATH}/{name}")
        for name in (
            "calorificValue",
            "conversionFactor",
            "maxNumberOfIntervals",
            "numberOfConsumptionBlocks",
            "numberOfTouTiers",
            "subIntervalLength",
            "supplyLimit",
            "tieredConsumptionBlocks",
        )
    ),
    ("Subscription", "Condition"),
]


def find(root: etree._Element, path: str) -> list[etree._Element]:
    """The elements at ``path`` (``/``-separated local names) below ``root``."""
    steps = "/".join(f"s:{step}" for step in path.split("/"))
    found: list[etree._Element] = root.xpath(steps, namespaces={"s": NS})
    return found


def with_only(tag: str, keep: str) -> bytes:
    """The maximal ``tag`` body without the other UNUSED elements of the same document: a body
    that exercises ``keep`` alone."""
    root = etree.fromstring(MAXIMAL[tag]())
    for other_tag, path in UNUSED:
        if other_tag == tag and path != keep:
            for element in find(root, path):
                parent = element.getparent()
                assert parent is not None
                parent.remove(element)
    return etree.tostring(root)
