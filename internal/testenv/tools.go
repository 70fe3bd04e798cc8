package testenv

import (
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// DCMTK skips the test unless every named DCMTK tool is installed (Debian
// package dcmtk; .ci/run installs it).
func DCMTK(tb testing.TB, tools ...string) {
	tb.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			tb.Skipf("DCMTK %s not installed (apt-get install dcmtk)", tool)
		}
	}
}

// Run runs a command and returns its combined output, failing the test
// with that output if it exits non-zero.
func Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// for peers (storescp, a restarted listener) that take a port number.
func FreePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// WaitFor polls cond until it holds, failing the test after timeout.
func WaitFor(tb testing.TB, what string, timeout time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for pause := time.Millisecond; !cond(); pause = min(2*pause, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(pause)
	}
}
