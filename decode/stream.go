package decode

import (
	"errors"
	"fmt"
	"io"

	"github.com/bufscope/bufscope/capture"
	"github.com/gopacket/gopacket/layers"
)

// RecordReader streams Records out of a trace (or any pcap/pcapng file the
// capture package reads). It decodes one packet at a time, so memory stays
// bounded whatever the size of the file. Not safe for concurrent use.
type RecordReader struct {
	r      *capture.Reader
	d      *Decoder
	own    bool
	pkt    capture.Packet
	recs   []Record
	pos    int
	npkt   int64
	closed bool
}

// OpenRecords opens the trace at path with capture.Open and returns a
// RecordReader over it; Close closes the trace too.
func OpenRecords(path string, ropts capture.ReaderOptions, dopts DecoderOptions) (*RecordReader, error) {
	r, err := capture.Open(path, ropts)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	rr := NewRecordReader(r, dopts)
	rr.own = true
	return rr, nil
}

// NewRecordReader decodes the packets of an already open capture.Reader.
// The caller keeps ownership of r: Close does not close it.
func NewRecordReader(r *capture.Reader, dopts DecoderOptions) *RecordReader {
	return &RecordReader{r: r, d: NewDecoder(dopts), recs: make([]Record, 0, 16)}
}

// Decoder returns the Decoder the reader uses, e.g. to render the last
// packet's layers with the same configuration.
func (rr *RecordReader) Decoder() *Decoder { return rr.d }

// NextPacket reads the next packet and returns it with its Records. Both
// are valid until the next call (the packet's Data belongs to the
// capture.Reader; the slice of Records is reused). A packet may have no
// Records (ARP, non-IP). At the end it returns io.EOF, or the capture
// reader's error (which names the file and the damaged offset).
func (rr *RecordReader) NextPacket() (capture.Packet, []Record, error) {
	p, err := rr.r.Next()
	if err != nil {
		return capture.Packet{}, nil, err
	}
	rr.npkt++
	link := layers.LinkTypeEthernet
	if ifs := rr.r.Interfaces(); p.Interface >= 0 && p.Interface < len(ifs) {
		link = ifs[p.Interface].LinkType
	}
	rr.pkt = p
	rr.recs = rr.d.Records(p.Timestamp.UnixNano(), p.Interface, link, p.Data, rr.recs[:0])
	rr.pos = 0
	return p, rr.recs, nil
}

// Next returns the next Record, reading packets as needed. Records are
// values: the caller may keep them. At the end it returns io.EOF.
func (rr *RecordReader) Next() (Record, error) {
	for rr.pos >= len(rr.recs) {
		if _, _, err := rr.NextPacket(); err != nil {
			return Record{}, err
		}
	}
	rr.pos++
	return rr.recs[rr.pos-1], nil
}

// Packets returns how many packets have been read so far.
func (rr *RecordReader) Packets() int64 { return rr.npkt }

// Close closes the trace if OpenRecords opened it.
func (rr *RecordReader) Close() error {
	if rr.closed {
		return nil
	}
	rr.closed = true
	if rr.own {
		return rr.r.Close()
	}
	return nil
}

// ReadAll decodes every Record of the reader into a slice. Convenient for
// tests and small traces; large traces should stream with Next.
func ReadAll(rr *RecordReader) ([]Record, error) {
	var out []Record
	for {
		r, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
}
