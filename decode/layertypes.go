package decode

import (
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Every layer type bufscope defines, in the application range 1000–1999.
// Numbers are part of no wire format but keep them stable: tests and golden
// files print them.
var (
	// LayerTypeTelemetryReport is a dispatcher, not a layer: its decoder looks
	// at the version nibble of a report payload and adds a v0.5, v1.0 or v2.0
	// layer (or an Opaque one). Report ports route UDP here.
	LayerTypeTelemetryReport = gopacket.RegisterLayerType(1000, gopacket.LayerTypeMetadata{
		Name: "TelemetryReport", Decoder: gopacket.DecodeFunc(decodeTelemetryReport)})
	LayerTypeTelemetryReportV2 = gopacket.RegisterLayerType(1001, gopacket.LayerTypeMetadata{
		Name: "TelemetryReportV2", Decoder: gopacket.DecodeFunc(decodeTelemetryReportV2)})
	LayerTypeTelemetryReportV1 = gopacket.RegisterLayerType(1002, gopacket.LayerTypeMetadata{
		Name: "TelemetryReportV1", Decoder: gopacket.DecodeFunc(decodeTelemetryReportV1)})
	LayerTypeTelemetryReportV05 = gopacket.RegisterLayerType(1003, gopacket.LayerTypeMetadata{
		Name: "TelemetryReportV05", Decoder: gopacket.DecodeFunc(decodeTelemetryReportV05)})
	LayerTypeINT = gopacket.RegisterLayerType(1004, gopacket.LayerTypeMetadata{
		Name: "INT", Decoder: gopacket.DecodeFunc(decodeINT)})
	LayerTypeIFA = gopacket.RegisterLayerType(1005, gopacket.LayerTypeMetadata{
		Name: "IFA", Decoder: gopacket.DecodeFunc(decodeIFA)})
	LayerTypeOpaque = gopacket.RegisterLayerType(1006, gopacket.LayerTypeMetadata{
		Name: "OpaqueTelemetry", Decoder: gopacket.DecodeFunc(decodeOpaque)})
)

// IPProtocolIFA is the IP protocol number IFA 2.0 deployments use (an
// experimental value from draft-kumar-ippm-ifa; configurable in DecoderOptions).
const IPProtocolIFA = 131

// init wires bufscope's layers into gopacket's generic decoding: the default
// report port and the IFA protocol number. Only these two, because a global
// registration affects every user of gopacket in the process; the other
// report ports and INT signalling are options of Decoder.
func init() {
	layers.RegisterUDPPortLayerType(DefaultReportPort, LayerTypeTelemetryReport)
	if layers.IPProtocolMetadata[IPProtocolIFA].DecodeWith == nil ||
		layers.IPProtocolMetadata[IPProtocolIFA].LayerType == 0 {
		layers.IPProtocolMetadata[IPProtocolIFA] = layers.EnumMetadata{
			DecodeWith: gopacket.DecodeFunc(decodeIFA), Name: "IFA", LayerType: LayerTypeIFA}
	}
}

// decodeTelemetryReport picks the report version by the first nibble.
func decodeTelemetryReport(data []byte, p gopacket.PacketBuilder) error {
	if len(data) == 0 {
		return decodeOpaqueReason(data, p, "empty telemetry report payload")
	}
	switch data[0] >> 4 {
	case 0:
		return decodeTelemetryReportV05(data, p)
	case 1:
		return decodeTelemetryReportV1(data, p)
	case 2:
		return decodeTelemetryReportV2(data, p)
	}
	return decodeOpaqueReason(data, p, "telemetry report version nibble is not 0, 1 or 2")
}
