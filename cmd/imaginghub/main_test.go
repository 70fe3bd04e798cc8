package main

import (
	"bytes"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The tests run this test binary as the imaginghub command.
func TestMain(m *testing.M) {
	if os.Getenv("IMAGINGHUB_TEST_MAIN") == "1" {
		os.Args = append([]string{"imaginghub"}, strings.Fields(os.Getenv("IMAGINGHUB_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func command(t *testing.T, args string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(cleanEnv(), "IMAGINGHUB_TEST_MAIN=1", "IMAGINGHUB_TEST_ARGS="+args,
		"IMAGINGHUB_DATA_DIR="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// cleanEnv drops IMAGINGHUB_* variables of the surrounding run.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IMAGINGHUB_") {
			env = append(env, kv)
		}
	}
	return env
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestBadConfigurationExitsWithOneLine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cases := []struct {
		name string
		env  []string
		want string
	}{
		{"unknown key", []string{"IMAGINGHUB_DICOM_TITLE=X"}, "IMAGINGHUB_DICOM_TITLE"},
		{"bad database URL", []string{"IMAGINGHUB_DATABASE_URL=mysql://db/hub"}, "IMAGINGHUB_DATABASE_URL"},
		{"bad redis URL", []string{"IMAGINGHUB_REDIS_URL=redis//nohost"}, "IMAGINGHUB_REDIS_URL"},
		{"HTTP port in use", []string{"IMAGINGHUB_HTTP_ADDR=" + busy.Addr().String(), "IMAGINGHUB_NATS_LISTEN="}, "IMAGINGHUB_HTTP_ADDR"},
		{"NATS port in use", []string{"IMAGINGHUB_HTTP_ADDR=127.0.0.1:0", "IMAGINGHUB_NATS_LISTEN=" + busy.Addr().String()}, "IMAGINGHUB_NATS_LISTEN"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := command(t, "serve", tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() == 0 {
				t.Fatalf("exit %v, want non-zero", err)
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "imaginghub: ") || !strings.Contains(last, tc.want) {
				t.Fatalf("last line %q should name %s; stderr:\n%s", last, tc.want, stderr.String())
			}
		})
	}
}

func TestConfigPrintRedacts(t *testing.T) {
	out, err := command(t, "config print", "IMAGINGHUB_DATABASE_URL=postgres://hub:hunter2@db/hub").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), "postgres://hub:xxxxx@db/hub") {
		t.Fatalf("config print:\n%s", out)
	}
}

// serve answers /readyz within 5 s and exits 0 on SIGTERM after draining.
func TestServeReadyAndGracefulStop(t *testing.T) {
	addr := freeAddr(t)
	cmd := command(t, "serve", "IMAGINGHUB_HTTP_ADDR="+addr, "IMAGINGHUB_NATS_LISTEN=",
		"IMAGINGHUB_DICOM_ADDR="+freeAddr(t), "IMAGINGHUB_HL7_ADDR="+freeAddr(t))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := false
	for time.Since(start) < 5*time.Second {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				ready = true
				break
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	if !ready {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("/readyz not 200 within 5 s; log:\n%s", stderr.String())
	}
	t.Logf("ready after %v", time.Since(start).Round(time.Millisecond))
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v; log:\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "shutting down") {
		t.Fatalf("no graceful shutdown in log:\n%s", stderr.String())
	}
}

// The operator's DICOM tools against a running hub: synth, echo, store
// (two associations), find at study and image level, and move to a DCMTK
// storescp registered in dicom.remotes.
func TestDICOMToolsAgainstServe(t *testing.T) {
	httpAddr, dicomAddr := freeAddr(t), freeAddr(t)
	scpAddr := freeAddr(t)
	env := []string{"IMAGINGHUB_HTTP_ADDR=" + httpAddr, "IMAGINGHUB_NATS_LISTEN=",
		"IMAGINGHUB_DICOM_ADDR=" + dicomAddr, "IMAGINGHUB_HL7_ADDR=" + freeAddr(t),
		"IMAGINGHUB_DICOM_REMOTES=STORESCP=" + scpAddr}
	dataDir := t.TempDir()
	hub := command(t, "serve", append(env, "IMAGINGHUB_DATA_DIR="+dataDir)...)
	var logs bytes.Buffer
	hub.Stderr = &logs
	if err := hub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { hub.Process.Signal(syscall.SIGTERM); hub.Wait() }()
	waitReady(t, httpAddr, &logs)

	tool := func(args string) string {
		t.Helper()
		out, err := command(t, args).CombinedOutput()
		if err != nil {
			t.Fatalf("imaginghub %s: %v\n%s", args, err, out)
		}
		return string(out)
	}
	dir := t.TempDir()
	tool("dicom synth --instances 6 --size 64 --seed 3 " + dir)
	if out := tool("dicom echo " + dicomAddr); !strings.Contains(out, "Success") {
		t.Fatalf("echo: %s", out)
	}
	if out := tool("dicom store --quiet --parallel 2 " + dicomAddr + " " + dir); !strings.Contains(out, "stored 6 of 6 instances (0 failed") {
		t.Fatalf("store: %s", out)
	}
	out := tool("dicom find --level STUDY -k PatientName=DOE* -k StudyInstanceUID -k NumberOfStudyRelatedInstances " + dicomAddr)
	if !strings.Contains(out, "C-FIND: 1 matches, status 0x0000") || !strings.Contains(out, `NumberOfStudyRelatedInstances="6"`) {
		t.Fatalf("find study: %s", out)
	}
	study := ""
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "StudyInstanceUID="); ok {
			study = strings.Trim(v, `"`)
		}
	}
	// Hierarchical: an IMAGE-level query names its study and series.
	out = tool("dicom find --level SERIES -k StudyInstanceUID=" + study + " -k SeriesInstanceUID " + dicomAddr)
	series := ""
	for _, f := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(f, "SeriesInstanceUID="); ok {
			series = strings.Trim(v, `"`)
		}
	}
	out = tool("dicom find --level IMAGE -k StudyInstanceUID=" + study + " -k SeriesInstanceUID=" + series + " -k SOPInstanceUID " + dicomAddr)
	if !strings.Contains(out, "C-FIND: 6 matches, status 0x0000") || strings.Count(out, "SOPInstanceUID=") != 6 {
		t.Fatalf("find images:\n%s", out)
	}

	// The archive check, while the hub runs: consistent; then a file no
	// row names, as a crash between a file's commit and its row's leaves,
	// is reported (exit status 1) and removed.
	check := func(args string) (string, error) {
		out, err := command(t, args, "IMAGINGHUB_DATA_DIR="+dataDir).CombinedOutput()
		return string(out), err
	}
	if out, err := check("archive check"); err != nil || !strings.Contains(out, "6 instance rows") || !strings.Contains(out, "6 files") || !strings.HasSuffix(out, "consistent\n") {
		t.Fatalf("archive check: %v\n%s", err, out)
	}
	orphan := filepath.Join(dataDir, "blobs", "objects", study, series, "1.2.826.0.1.3680043.10.1.77.kxyz.dcm")
	if err := os.WriteFile(orphan, []byte("cut short"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(orphan, old, old)
	if out, err := check("archive check"); err == nil || !strings.Contains(out, "files without a row:           1") || !strings.Contains(out, "1.2.826.0.1.3680043.10.1.77.kxyz.dcm") {
		t.Fatalf("archive check with an orphan: %v\n%s", err, out)
	}
	if out, err := check("archive check --remove-orphans"); err != nil || !strings.Contains(out, "1 removed") {
		t.Fatalf("archive check --remove-orphans: %v\n%s", err, out)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("orphan still there: %v", err)
	}
	// A data directory that is not there is an error, not an empty archive.
	if out, err := command(t, "archive check", "IMAGINGHUB_DATA_DIR="+filepath.Join(dataDir, "typo")).CombinedOutput(); err == nil || !strings.Contains(string(out), "data.dir") {
		t.Fatalf("archive check of a missing data dir: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "typo")); !os.IsNotExist(err) {
		t.Fatalf("archive check created the missing data dir: %v", err)
	}

	if _, err := exec.LookPath("storescp"); err != nil {
		t.Skip("DCMTK storescp not installed; move not tested")
	}
	got := t.TempDir()
	_, port, _ := net.SplitHostPort(scpAddr)
	scp := exec.Command("storescp", "-aet", "STORESCP", "-od", got, port)
	if err := scp.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { scp.Process.Kill(); scp.Wait() }()
	time.Sleep(300 * time.Millisecond)
	tool("dicom move --dest STORESCP -k StudyInstanceUID=" + study + " " + dicomAddr)
	files, _ := filepath.Glob(filepath.Join(got, "*"))
	if len(files) != 6 {
		t.Fatalf("storescp received %d files, want 6", len(files))
	}
}

func waitReady(t *testing.T, addr string, logs *bytes.Buffer) {
	t.Helper()
	for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(25 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
	}
	t.Fatalf("hub not ready; log:\n%s", logs.String())
}
