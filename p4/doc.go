// Package p4 holds the P4_16 sources of the SmartNIC tagger and the switch
// telemetry programs, and a test that their header declarations match the
// layouts in package decode. It has no runtime code.
package p4
