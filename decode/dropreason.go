package decode

// switchDropReasons maps the 8-bit drop reason of Telemetry Report drop
// reports to the meaning fabric-tna (the ONF SD-Fabric P4 program, whose codes
// follow the switch.p4 numbering) documents for it. The P4.org specifications
// themselves leave the values to the implementation, so a code missing here
// prints as a number.
var switchDropReasons = map[uint8]string{
	0:   "unknown",
	26:  "ip ttl zero",
	29:  "routing table miss",
	55:  "port vlan mapping miss",
	71:  "traffic manager (queue full)",
	80:  "acl deny",
	89:  "bridging miss",
	128: "next id miss",
	129: "mpls miss",
	130: "egress next miss",
	131: "mpls ttl zero",
	132: "upf downlink session miss",
	133: "upf downlink session drop",
	134: "upf uplink session miss",
	135: "upf uplink session drop",
	136: "upf downlink session drop (buffer)",
	137: "upf downlink termination miss",
	138: "upf downlink termination drop",
	139: "upf uplink termination miss",
	140: "upf uplink termination drop",
	150: "upf uplink recirculation deny",
	160: "ingress qos meter",
	170: "routing v4 drop",
	171: "routing v6 drop",
}

// SwitchDropReasonName returns the documented meaning of a switch drop
// reason code, or "" if none is documented.
func SwitchDropReasonName(code uint8) string { return switchDropReasons[code] }
