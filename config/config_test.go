package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	cfg, err := Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != ":8080" || cfg.DICOM.Addr != ":11112" || cfg.DICOM.AE != "IMAGINGHUB" ||
		cfg.HL7.Addr != ":2575" || cfg.NATS.Listen != "127.0.0.1:4223" || cfg.Data.Dir != "./data" ||
		cfg.Study.StableAfter != time.Minute {
		t.Fatalf("defaults: %+v", cfg)
	}
}

// The environment variable names are a contract with deployments.
func TestContractEnvNames(t *testing.T) {
	have := map[string]bool{}
	for _, n := range EnvNames() {
		have[n] = true
	}
	for _, n := range []string{
		"IMAGINGHUB_DATA_DIR", "IMAGINGHUB_HTTP_ADDR", "IMAGINGHUB_DICOM_ADDR", "IMAGINGHUB_DICOM_AE",
		"IMAGINGHUB_HL7_ADDR", "IMAGINGHUB_NATS_URL", "IMAGINGHUB_NATS_LISTEN", "IMAGINGHUB_DATABASE_URL",
		"IMAGINGHUB_REDIS_URL", "IMAGINGHUB_STUDY_STABLE_AFTER",
	} {
		if !have[n] {
			t.Errorf("missing %s", n)
		}
	}
}

func TestFileThenEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.yaml")
	os.WriteFile(path, []byte("http:\n  addr: 127.0.0.1:9000\ndicom:\n  ae: FILEAE\n  allowed_calling_aes: [CT1, MR1@10.0.0.5]\nstudy:\n  stable_after: 90s\n"), 0o600)
	cfg, err := Load(path, []string{"IMAGINGHUB_DICOM_AE=ENVAE", "IMAGINGHUB_TEST_NATS_URL=ignored", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Addr != "127.0.0.1:9000" || cfg.DICOM.AE != "ENVAE" || cfg.Study.StableAfter != 90*time.Second {
		t.Fatalf("got %+v", cfg)
	}
	if strings.Join(cfg.DICOM.AllowedCallingAEs, ",") != "CT1,MR1@10.0.0.5" {
		t.Fatalf("allowed AEs %q", cfg.DICOM.AllowedCallingAEs)
	}
	cfg, err = Load(path, []string{"IMAGINGHUB_DICOM_ALLOWED_CALLING_AES=A, B"})
	if err != nil || strings.Join(cfg.DICOM.AllowedCallingAEs, ",") != "A,B" {
		t.Fatalf("env list: %q %v", cfg.DICOM.AllowedCallingAEs, err)
	}
}

func TestBadConfigNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	n := 0
	write := func(s string) string {
		n++
		p := filepath.Join(dir, fmt.Sprintf("c%d.yaml", n))
		os.WriteFile(p, []byte(s), 0o600)
		return p
	}
	cases := []struct {
		name, file string
		env        []string
		want       string
	}{
		{"unknown env", "", []string{"IMAGINGHUB_HTTP_ADR=:1"}, "IMAGINGHUB_HTTP_ADR"},
		{"unknown yaml key", write("http:\n  adr: :1\n"), nil, "adr"},
		{"unknown yaml section", write("htp:\n  addr: :1\n"), nil, "htp"},
		{"bad database url", "", []string{"IMAGINGHUB_DATABASE_URL=mysql://x/y"}, "IMAGINGHUB_DATABASE_URL"},
		{"bad redis url", "", []string{"IMAGINGHUB_REDIS_URL=http://x"}, "IMAGINGHUB_REDIS_URL"},
		{"bad nats url", "", []string{"IMAGINGHUB_NATS_URL=::nope"}, "IMAGINGHUB_NATS_URL"},
		{"bad addr", "", []string{"IMAGINGHUB_DICOM_ADDR=11112"}, "IMAGINGHUB_DICOM_ADDR"},
		{"bad duration", "", []string{"IMAGINGHUB_STUDY_STABLE_AFTER=soon"}, "IMAGINGHUB_STUDY_STABLE_AFTER"},
		{"bad AE", "", []string{"IMAGINGHUB_DICOM_AE=THIS_AE_IS_TOO_LONG"}, "IMAGINGHUB_DICOM_AE"},
		{"bad policy", "", []string{"IMAGINGHUB_DICOM_DUPLICATE_POLICY=maybe"}, "IMAGINGHUB_DICOM_DUPLICATE_POLICY"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.file, tc.env)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q should be one line naming %s", err, tc.want)
			}
		})
	}
	_, err := Load("", []string{"IMAGINGHUB_DATABASE_URL=mysql://x/y"})
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "database.url" {
		t.Fatalf("want *Error for database.url, got %v", err)
	}
}

func TestRedactedHidesPasswords(t *testing.T) {
	cfg, err := Load("", []string{
		"IMAGINGHUB_DATABASE_URL=postgres://hub:s3cret@db:5432/hub?sslmode=disable",
		"IMAGINGHUB_REDIS_URL=redis://:r3dis@cache:6379/0",
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Redacted().YAML()
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	if strings.Contains(s, "s3cret") || strings.Contains(s, "r3dis") {
		t.Fatalf("secret printed:\n%s", s)
	}
	if !strings.Contains(s, "postgres://hub:xxxxx@db:5432/hub") || !strings.Contains(s, "stable_after: 1m0s") {
		t.Fatalf("unexpected rendering:\n%s", s)
	}
	if cfg.Database.URL != "postgres://hub:s3cret@db:5432/hub?sslmode=disable" {
		t.Fatal("Redacted changed the original")
	}
	// The printed configuration loads back to the same values.
	p := filepath.Join(t.TempDir(), "printed.yaml")
	plain, _ := cfg.YAML()
	os.WriteFile(p, plain, 0o600)
	again, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Database.URL != cfg.Database.URL || again.Study.StableAfter != cfg.Study.StableAfter {
		t.Fatalf("round trip: %+v", again)
	}
}

func TestRouterAndRemotes(t *testing.T) {
	dir := t.TempDir()
	good := `
dicom:
  remotes: "WS1=10.0.0.7:104, LAB3D=lab:11112"
router:
  destinations:
    - {name: lab3d, ae: LAB3D, addr: "lab:11112", concurrency: 2}
    - {name: archive, ae: OFFSITE, addr: "dr.example:104"}
    - {name: ai, url: "https://ai.example/hook", secret: "s3cr3t"}
  rules:
    - {name: ct-to-3d, on: [ih.dicom.instance.stored], match: {modality: "^CT$", time_of_day: "22:00-06:00"}, forward: [lab3d]}
    - {name: all, on: [ih.dicom.instance.stored], forward: [archive]}
    - {name: stable, on: [ih.dicom.study.stable], forward: [ai]}
`
	p := filepath.Join(dir, "good.yaml")
	os.WriteFile(p, []byte(good), 0o600)
	cfg, err := Load(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Router.Rules) != 3 || cfg.Router.Destinations[0].Concurrency != 2 || cfg.Router.Rules[0].Match.TimeOfDay != "22:00-06:00" {
		t.Fatalf("router: %+v", cfg.Router)
	}
	remotes, _ := ParseRemotes(cfg.DICOM.Remotes)
	if remotes["WS1"] != "10.0.0.7:104" || remotes["LAB3D"] != "lab:11112" {
		t.Fatalf("remotes %v", remotes)
	}
	out, _ := cfg.Redacted().YAML()
	if strings.Contains(string(out), "s3cr3t") {
		t.Fatalf("webhook secret printed:\n%s", out)
	}
	if cfg.Router.Destinations[2].Secret != "s3cr3t" {
		t.Fatal("Redacted changed the original")
	}
	for name, bad := range map[string]string{
		"unknown destination": "router:\n  rules:\n    - {on: [ih.dicom.instance.stored], forward: [nowhere]}\n",
		"both url and addr":   "router:\n  destinations:\n    - {name: x, url: 'http://a', ae: A, addr: 'h:1'}\n",
		"bad regexp":          "router:\n  destinations:\n    - {name: x, url: 'http://a'}\n  rules:\n    - {on: [ih.x], match: {modality: '(['}, forward: [x]}\n",
		"bad time of day":     "router:\n  destinations:\n    - {name: x, url: 'http://a'}\n  rules:\n    - {on: [ih.x], match: {time_of_day: 'late'}, forward: [x]}\n",
		"bad remotes":         "dicom:\n  remotes: 'WS1:104'\n",
	} {
		p := filepath.Join(dir, "bad.yaml")
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := Load(p, nil); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: want a one-line error, got %v", name, err)
		}
	}
}

func TestParseRemotes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
		ok   bool
	}{
		{"", map[string]string{}, true},
		{"WS1=10.0.0.5:104", map[string]string{"WS1": "10.0.0.5:104"}, true},
		{" WS1 = host:104 , VIEWER=[::1]:11112,", map[string]string{"WS1": "host:104", "VIEWER": "[::1]:11112"}, true},
		{"WS1", nil, false},
		{"WS1=host", nil, false},
		{"=host:104", nil, false},
		{"THIS_AE_IS_TOO_LONG=host:104", nil, false},
		{`BACK\SLASH=host:104`, nil, false},
		{"WS1=a:1,WS1=b:2", nil, false},
	} {
		got, err := ParseRemotes(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("ParseRemotes(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ParseRemotes(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestEnvironRoundTrip(t *testing.T) {
	cfg := Default()
	cfg.DICOM.AllowedCallingAEs = []string{"CT1", "MR1@10.0.0.5"}
	cfg.Study.StableAfter = 1500 * time.Millisecond
	cfg.Database.URL = "postgres://hub:pw@db/hub"
	cfg.Worklist.IncludeFinalSteps = true
	got, err := Load("", cfg.Environ())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cfg.YAML()
	b, _ := got.YAML()
	if string(a) != string(b) {
		t.Fatalf("round trip differs:\n%s\n---\n%s", a, b)
	}
}
