//go:build linux

package rpctag_test

import (
	"log"
	"net"

	"github.com/bufscope/bufscope/hwprobe/rpctag"
)

// An RPC client tags each request it sends. The tagger was loaded by
// `bufscope deploy` (or tagger.Load) for the cgroup this process runs in,
// and pinned its map at the default place.
func Example() {
	table, err := rpctag.Open("/sys/fs/bpf/bufscope/tags")
	if err != nil {
		log.Fatal(err) // no tagger: send untagged, or give up
	}
	defer table.Close()

	c, err := net.Dial("tcp", "10.0.0.2:8080")
	if err != nil {
		log.Fatal(err)
	}
	// Wrap before the first byte is written: offsets count from there.
	conn, err := table.Wrap(c.(*net.TCPConn))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	frame := []byte("...serialized request, header included...")
	var spanID, traceIDLow uint64 = 0x00f067aa0ba902b7, 0xa3ce929d0e0e4736
	if err := conn.BeginMessage(rpctag.Request, spanID, traceIDLow, uint32(len(frame))); err != nil {
		log.Print(err) // the message goes out untagged
	}
	if _, err := conn.Write(frame); err != nil {
		log.Fatal(err)
	}
	// Read the response through conn as through the *net.TCPConn.
}
