package decode

import (
	"errors"

	"github.com/gopacket/gopacket"
)

// TelemetryReport decodes a report payload of any version, chosen by its
// first nibble: 0 → V05, 1 → V1, 2 → V2. It exists so that a
// gopacket.DecodingLayerParser can follow UDP into a report port (UDP names
// LayerTypeTelemetryReport as its next layer for registered ports) without
// knowing the version in advance. Version says which member holds the
// result. Not safe for concurrent use.
type TelemetryReport struct {
	Version uint8
	V2      TelemetryReportV2
	V1      TelemetryReportV1
	V05     TelemetryReportV05
}

var errReportVersion = errors.New("telemetry report: version nibble is not 0, 1 or 2")

// LayerType returns LayerTypeTelemetryReport.
func (t *TelemetryReport) LayerType() gopacket.LayerType { return LayerTypeTelemetryReport }

// CanDecode returns LayerTypeTelemetryReport.
func (t *TelemetryReport) CanDecode() gopacket.LayerClass { return LayerTypeTelemetryReport }

type reportLayer interface {
	gopacket.DecodingLayer
	LayerContents() []byte
}

func (t *TelemetryReport) active() reportLayer {
	switch t.Version {
	case 0:
		return &t.V05
	case 1:
		return &t.V1
	}
	return &t.V2
}

// DecodeFromBytes dispatches on the version nibble.
func (t *TelemetryReport) DecodeFromBytes(data []byte, df gopacket.DecodeFeedback) error {
	if len(data) == 0 {
		df.SetTruncated()
		return errReportV2Short
	}
	t.Version = data[0] >> 4
	if t.Version > 2 {
		return errReportVersion
	}
	return t.active().DecodeFromBytes(data, df)
}

// NextLayerType is the decoded version's next layer.
func (t *TelemetryReport) NextLayerType() gopacket.LayerType { return t.active().NextLayerType() }

// LayerContents returns the decoded version's contents.
func (t *TelemetryReport) LayerContents() []byte { return t.active().LayerContents() }

// LayerPayload returns the decoded version's payload.
func (t *TelemetryReport) LayerPayload() []byte { return t.active().LayerPayload() }
