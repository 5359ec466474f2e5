package lab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// TruthSchema is the value of Truth.Schema this package writes.
const TruthSchema = "bufscope.truth/v1"

// Truth is the contents of a <name>.truth.json file: what the lab injected
// into a recorded trace, for the analyzer's accuracy tests
// (docs/truth.md). Times are RFC 3339 with nanoseconds, UTC.
type Truth struct {
	Schema   string        `json:"schema"`
	Fault    string        `json:"fault"`
	Command  string        `json:"command"`
	Trace    string        `json:"trace"`
	Topology TruthTopology `json:"topology"`
	Faults   []TruthFault  `json:"faults"`
	Requests int           `json:"requests"`
	SLO      string        `json:"slo"`
}

// TruthTopology lists the lab's nodes.
type TruthTopology struct {
	Nodes []TruthNode `json:"nodes"`
}

// TruthNode is one node of the lab.
type TruthNode struct {
	Name   string   `json:"name"`
	Role   string   `json:"role"`
	NodeID uint32   `json:"node_id"`
	Addrs  []string `json:"addrs"`
}

// TruthFault is one injected condition.
type TruthFault struct {
	Buffer TruthBuffer `json:"buffer"`
	// Event is a decode.EventKind name (drop, queuing, stall), or
	// "slow-app" for slow server processing, or "loss" for a lossy link.
	Event          string    `json:"event"`
	Start          time.Time `json:"start"`
	End            time.Time `json:"end"`
	CulpritFlows   []string  `json:"culprit_flows"`
	AffectedRPCIDs []string  `json:"affected_rpc_ids"`
	Notes          string    `json:"notes"`
}

// TruthBuffer names the buffer a fault acted on. Kind is a
// decode.BufferKind name, "application" or "link".
type TruthBuffer struct {
	Node   string `json:"node"`
	NodeID uint32 `json:"node_id"`
	Kind   string `json:"kind"`
	Ifname string `json:"ifname,omitempty"`
	Queue  int    `json:"queue"`
}

// MarshalJSON writes times with nanoseconds always present, as the schema
// asks (time.Time's own form drops trailing zeros).
func (f TruthFault) MarshalJSON() ([]byte, error) {
	type plain TruthFault
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		plain
		Start string `json:"start"`
		End   string `json:"end"`
	}{plain(f), f.Start.UTC().Format(rfc3339Nano9), f.End.UTC().Format(rfc3339Nano9)})
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), err
}

const rfc3339Nano9 = "2006-01-02T15:04:05.000000000Z07:00"

// Encode writes t as indented JSON ending in a newline. Flows keep their
// "->" (json.Marshal would escape the ">").
func (t *Truth) Encode(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(t)
}

// ReadTruth reads and checks a truth file.
func ReadTruth(path string) (*Truth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseTruth(b, path)
}

// parseTruth decodes a truth file's contents; name is for errors.
func parseTruth(b []byte, path string) (*Truth, error) {
	var t Truth
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if t.Schema != TruthSchema {
		return nil, fmt.Errorf("%s: schema %q, want %q", path, t.Schema, TruthSchema)
	}
	return &t, nil
}
