//go:build linux

package lab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/bufscope/bufscope/capture"
	"golang.org/x/sys/unix"
)

// AgentConfig is what a lab child process does. Exactly one field is set.
// It travels as JSON in the child's argument list.
type AgentConfig struct {
	Server    *ServerConfig    `json:"server,omitempty"`
	Client    *ClientConfig    `json:"client,omitempty"`
	Bulk      *BulkConfig      `json:"bulk,omitempty"`
	Collector *CollectorConfig `json:"collector,omitempty"`
}

// CollectorConfig configures the recording agent in the collector
// namespace.
type CollectorConfig struct {
	Interfaces []string        `json:"interfaces"`
	Output     string          `json:"output"`
	Nodes      json.RawMessage `json:"nodes"` // the lab's nodes, written into the trace's topology
	Overwrite  bool            `json:"overwrite,omitempty"`
}

// agentReady is the line an agent prints once it serves, listens or
// captures; the lab waits for it before going on.
const agentReady = "bufscope-lab-agent-ready"

// RunAgent runs the agent described by the JSON config until ctx is done
// (the lab sends SIGTERM) or, for a client, until its workload ends. It is
// the body of the hidden `bufscope lab agent` command.
func RunAgent(ctx context.Context, config string, stdout io.Writer) error {
	var cfg AgentConfig
	if err := json.Unmarshal([]byte(config), &cfg); err != nil {
		return fmt.Errorf("lab agent: config: %w", err)
	}
	ready := func() { fmt.Fprintln(stdout, agentReady) }
	switch {
	case cfg.Server != nil:
		return runServer(ctx, *cfg.Server, ready)
	case cfg.Client != nil:
		return runClient(ctx, *cfg.Client, ready)
	case cfg.Bulk != nil:
		return runBulk(ctx, *cfg.Bulk, ready)
	case cfg.Collector != nil:
		return runCollector(ctx, *cfg.Collector, ready)
	}
	return errors.New("lab agent: config names no role")
}

// runCollector records the management bridge (the reports) and, when the
// lab mirrors, the data plane, until ctx is done.
func runCollector(ctx context.Context, cfg CollectorConfig, ready func()) error {
	// A socket on the report port, so the exporters' datagrams are
	// delivered rather than answered with ICMP port unreachable (which
	// would fail their next send). The capture, not this socket, records,
	// so nothing reads it: with the smallest receive buffer the kernel
	// drops each datagram on arrival, which costs neither a wakeup nor a
	// copy per report packet on the two CPUs the workload runs on.
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(CollectorIP), Port: ReportPort})
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	defer sink.Close()
	if err := sink.SetReadBuffer(1); err != nil {
		return fmt.Errorf("collector: shrinking the report sink's buffer: %w", err)
	}
	live, err := capture.OpenLive(capture.LiveOptions{
		Interfaces: cfg.Interfaces,
		Filter:     fmt.Sprintf("(udp dst port %d) or tcp", ReportPort),
		KeepWhole:  fmt.Sprintf("udp dst port %d", ReportPort),
		Hostname:   "col",
	})
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	defer live.Close()
	topo, err := live.Topology()
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	// The lab's node list rides along with capture's own topology
	// document, so the trace alone names every node ID and address.
	var doc map[string]any
	if err := json.Unmarshal(topo, &doc); err != nil {
		return fmt.Errorf("collector: topology: %w", err)
	}
	if len(cfg.Nodes) > 0 {
		doc["nodes"] = cfg.Nodes
	}
	if topo, err = json.Marshal(doc); err != nil {
		return err
	}
	w, err := capture.Create(cfg.Output, capture.WriterOptions{Interfaces: live.Interfaces(), Topology: topo, Overwrite: cfg.Overwrite,
		// Lab traces are fixtures people open in Wireshark.
		WiresharkReadable: true})
	if err != nil {
		return fmt.Errorf("collector: -o %s: %w", cfg.Output, err)
	}
	ready()
	recErr := live.Record(ctx, w, capture.RecordLimits{})
	st := live.Stats()
	if err := errors.Join(recErr, w.Close()); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	// The lab reads this line for its overhead figures.
	fmt.Printf("collector-stats packets=%d bytes=%d wire=%d drops=%d\n", st.Packets, st.Bytes, st.WireBytes, st.Drops)
	return nil
}

// agent is a running child process.
type agent struct {
	node  string
	cmd   *exec.Cmd
	stats string // collector-stats line, if any
	done  chan error
	// exited is closed once the process was reaped; cmd.ProcessState
	// may be read only after that.
	exited chan struct{}
}

// hasExited says whether the process ended.
func (a *agent) hasExited() bool {
	select {
	case <-a.exited:
		return true
	default:
		return false
	}
}

// startAgent runs an agent in namespace ns, in cgroup dir cg (if set), and
// waits until it is ready.
func (r *runner) startAgent(node, ns, cg string, cfg AgentConfig) (*agent, error) {
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	args := append([]string{"netns", "exec", ns}, r.opts.Agent...)
	args = append(args, string(js))
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), r.opts.AgentEnv...)
	cmd.Stderr = r.opts.Log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if r.tags != nil {
		fd, err := unix.Dup(r.tags.FD())
		if err != nil {
			return nil, fmt.Errorf("agent %s: passing the tags map: %w", node, err)
		}
		f := os.NewFile(uintptr(fd), "tags")
		defer f.Close() // the child has its own copy once started
		cmd.ExtraFiles = []*os.File{f}
	}
	if cg != "" {
		// Placing the child at fork (clone3 CLONE_INTO_CGROUP) means
		// even its first socket is created inside the node's cgroup.
		f, err := os.Open(cg)
		if err != nil {
			return nil, fmt.Errorf("agent %s: cgroup %s: %w", node, cg, err)
		}
		defer f.Close()
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = int(f.Fd())
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("agent %s: %w", node, err)
	}
	a := &agent{node: node, cmd: cmd, done: make(chan error, 1), exited: make(chan struct{})}
	readyc := make(chan struct{})
	go func() {
		s := bufio.NewScanner(out)
		sawReady := false
		for s.Scan() {
			line := s.Text()
			switch {
			case line == agentReady && !sawReady:
				sawReady = true
				close(readyc)
			case strings.HasPrefix(line, "collector-stats "):
				a.stats = line
			default:
				fmt.Fprintf(r.opts.Log, "%s: %s\n", node, line)
			}
		}
		err := cmd.Wait()
		close(a.exited)
		if err != nil {
			err = fmt.Errorf("agent %s: %w", node, err)
		}
		a.done <- err
		close(a.done)
	}()
	select {
	case <-readyc:
		return a, nil
	case err := <-a.done:
		if err == nil {
			err = fmt.Errorf("agent %s exited before it was ready", node)
		}
		return nil, err
	case <-time.After(15 * time.Second):
		a.kill()
		return nil, fmt.Errorf("agent %s: not ready after 15 s", node)
	}
}

// stop asks the agent to finish (SIGTERM) and waits up to grace.
func (a *agent) stop(grace time.Duration) error {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		return ignoreSignal(err)
	case <-time.After(grace):
		a.kill()
		return fmt.Errorf("agent %s: did not stop within %s", a.node, grace)
	}
}

// wait waits for the agent to end by itself.
func (a *agent) wait(timeout time.Duration) error {
	select {
	case err := <-a.done:
		return err
	case <-time.After(timeout):
		return a.stop(5 * time.Second)
	}
}

func (a *agent) kill() {
	_ = a.cmd.Process.Kill()
}

func ignoreSignal(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return err
}
