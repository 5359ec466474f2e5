//go:build linux

package lab

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"testing"
)

// agentEnv makes the test binary act as `bufscope lab agent`: the lab runs
// its workload and collector as child processes, and in tests the child
// is this binary.
const agentEnv = "BUFSCOPE_LAB_TEST_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(agentEnv) == "1" {
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		err := RunAgent(ctx, os.Args[len(os.Args)-1], os.Stdout)
		stop()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// testAgent is Options.Agent/AgentEnv for tests.
func testAgent(t testing.TB) ([]string, []string) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{self}, []string{agentEnv + "=1"}
}
