// Package config holds the hub's configuration: a YAML file whose every key
// can be overridden by an environment variable IMAGINGHUB_<SECTION>_<KEY>.
//
// The struct below is the single source of truth: its yaml tags name the
// YAML keys and, upper-cased, the environment variables. Load rejects unknown
// keys and bad values with one error naming the key.
package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts every environment variable the hub reads.
const EnvPrefix = "IMAGINGHUB_"

// Config is the effective configuration of one hub process.
type Config struct {
	Data     Data     `yaml:"data"`
	HTTP     HTTP     `yaml:"http"`
	DICOM    DICOM    `yaml:"dicom"`
	DICOMweb DICOMweb `yaml:"dicomweb"`
	HL7      HL7      `yaml:"hl7"`
	RIS      RIS      `yaml:"ris"`
	PMS      PMS      `yaml:"pms"`
	NATS     NATS     `yaml:"nats"`
	Database Database `yaml:"database"`
	Redis    Redis    `yaml:"redis"`
	Study    Study    `yaml:"study"`
	Events   Events   `yaml:"events"`
	Worklist Worklist `yaml:"worklist"`
	Router   Router   `yaml:"router"`
	Workflow Workflow `yaml:"workflow"`
	FHIR     FHIR     `yaml:"fhir"`
	Log      Log      `yaml:"log"`
}

// Data is where the embedded defaults keep their files.
type Data struct {
	// Dir holds blobs, the SQLite catalog and the embedded JetStream store.
	Dir string `yaml:"dir" help:"data directory: blobs, SQLite catalog, embedded JetStream store"`
	// DirectIO writes received instances with direct I/O (Linux O_DIRECT).
	DirectIO bool `yaml:"direct_io" help:"write received instances with direct I/O, bypassing the page cache (Linux; falls back where the filesystem refuses it)"`
	// IntakeJournalBytes is the size of the intake journal; 0 turns it off.
	IntakeJournalBytes int64 `yaml:"intake_journal_bytes" help:"size of the intake journal (data dir, intake.journal), bytes: received instances are acknowledged once written there, their files and rows made durable behind; 0: off, each instance fsynced on its own"`
}

// HTTP is the HTTP listener: health, metrics, admin API, DICOMweb, FHIR.
type HTTP struct {
	Addr            string        `yaml:"addr" help:"HTTP listen address"`
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" help:"time given to in-flight requests on shutdown"`
}

// DICOM is the DICOM upper-layer listener.
type DICOM struct {
	Addr            string        `yaml:"addr" help:"DICOM listen address"`
	AE              string        `yaml:"ae" help:"the hub's AE title (the called AE it answers to)"`
	MaxAssociations int           `yaml:"max_associations" help:"concurrent associations; more are rejected (transient, local limit exceeded)"`
	ARTIMTimeout    time.Duration `yaml:"artim_timeout" help:"ARTIM timer: association request and release (PS3.8 §9.1.5)"`
	IdleTimeout     time.Duration `yaml:"idle_timeout" help:"an association silent this long is aborted"`
	MaxPDULength    int           `yaml:"max_pdu_length" help:"largest P-DATA PDU the hub accepts, bytes"`
	// AllowedCallingAEs, when set, is the only calling AE titles accepted:
	// "AE" or "AE@host".
	AllowedCallingAEs []string `yaml:"allowed_calling_aes" help:"comma-separated AE or AE@host allowed to associate; empty: any"`
	// DuplicatePolicy decides what a second copy of a SOP Instance UID does.
	DuplicatePolicy string `yaml:"duplicate_policy" help:"keep-first, replace or reject"`
	// Remotes are the DICOM peers the hub may send to (C-MOVE
	// destinations): "AE=host:port,AE2=host:port".
	Remotes string `yaml:"remotes" help:"C-MOVE destinations: AE=host:port,AE2=host:port"`
}

// DICOMweb is PS3.18 under /dicomweb on the HTTP listener.
type DICOMweb struct {
	PublicURL          string   `yaml:"public_url" help:"absolute URL clients reach the hub at (prefix of RetrieveURL and BulkDataURI); empty: from each request's Host"`
	CORSOrigins        []string `yaml:"cors_origins" help:"comma-separated origins a browser viewer may call from; * for any; empty: no CORS"`
	MaxQueryResults    int      `yaml:"max_query_results" help:"cap of a QIDO-RS response without a smaller limit (a Warning header says so)"`
	MaxStoreBytes      int64    `yaml:"max_store_bytes" help:"largest STOW-RS request body, bytes"`
	MetadataCacheBytes int      `yaml:"metadata_cache_bytes" help:"memory for cached instance metadata, bytes; negative: no cache"`
}

// HL7 is the MLLP listener and the hub's identity in HL7 messages.
type HL7 struct {
	Addr           string        `yaml:"addr" help:"HL7 v2 MLLP listen address"`
	Application    string        `yaml:"application" help:"the hub's MSH-3 Sending Application in replies and outbound messages"`
	Facility       string        `yaml:"facility" help:"the hub's MSH-4 Sending Facility"`
	MaxMessageSize int           `yaml:"max_message_size" help:"largest MLLP message accepted, bytes; larger ones close the connection"`
	MaxConnections int           `yaml:"max_connections" help:"concurrent MLLP connections"`
	IdleTimeout    time.Duration `yaml:"idle_timeout" help:"an MLLP connection silent this long is closed"`
	TLSCert        string        `yaml:"tls_cert" help:"PEM certificate file: serve MLLP over TLS"`
	TLSKey         string        `yaml:"tls_key" secret:"path" help:"PEM private key file for tls_cert"`
	SendTimeout    time.Duration `yaml:"send_timeout" help:"outbound MLLP: wait this long for the ACK"`
	SendAttempts   int           `yaml:"send_attempts" help:"outbound MLLP: tries before a message is dead-lettered"`
}

// RIS is the radiology information system the hub reports order status to.
type RIS struct {
	MLLPAddr string `yaml:"mllp_addr" help:"host:port of the RIS's MLLP listener for order status messages; empty: none sent"`
}

// PMS is the practice management (billing) system.
type PMS struct {
	MLLPAddr string `yaml:"mllp_addr" help:"host:port of the PMS's MLLP listener for DFT^P03 charges; empty: none sent"`
}

// NATS is the event backbone.
type NATS struct {
	URL      string `yaml:"url" secret:"url" help:"external NATS server(s); empty: run an embedded server"`
	Listen   string `yaml:"listen" help:"embedded server's client address (for the nats CLI); empty: in-process only"`
	Replicas int    `yaml:"replicas" help:"JetStream stream replicas (1 embedded; 3 on a cluster)"`
}

// Database is the catalog.
type Database struct {
	URL string `yaml:"url" secret:"url" help:"postgres://… for PostgreSQL; empty: SQLite in the data dir"`
}

// Redis is coordination: study-stable timers, dedupe keys, locks.
type Redis struct {
	URL       string `yaml:"url" secret:"url" help:"redis://… for Redis; empty: in-process"`
	KeyPrefix string `yaml:"key_prefix" help:"prefix of every Redis key the hub writes"`
}

// Study is study-level behaviour.
type Study struct {
	StableAfter time.Duration `yaml:"stable_after" help:"a study with no new instance for this long is stable"`
}

// Events is the event plumbing.
type Events struct {
	SubjectPrefix   string        `yaml:"subject_prefix" help:"prefix before every ih.* subject (to share a NATS account)"`
	StreamPrefix    string        `yaml:"stream_prefix" help:"prefix before every JetStream stream name"`
	MaxAge          time.Duration `yaml:"max_age" help:"how long the event stream keeps events"`
	DuplicateWindow time.Duration `yaml:"duplicate_window" help:"JetStream duplicate window for Nats-Msg-Id"`
}

// Worklist is the Modality Worklist and MPPS SCP.
type Worklist struct {
	IncludeFinalSteps bool `yaml:"include_final_steps" help:"MWL queries also return completed, discontinued and cancelled steps"`
	MaxMatches        int  `yaml:"max_matches" help:"an MWL query matching more items is refused (0xA700)"`
}

// Workflow is reconciliation, order status, billing and reporting.
type Workflow struct {
	// RISStatusFormat is the message that reports order status to the
	// RIS (ris.mllp_addr): "orm" (ORM^O01, v2.3.1) or "omi" (OMI^O23, v2.5.1).
	RISStatusFormat string `yaml:"ris_status_format" help:"order status messages to the RIS: orm (ORM^O01) or omi (OMI^O23)"`
	// BillingTrigger decides when a performed procedure is charged: "mpps"
	// (MPPS COMPLETED; modalities in no_mpps_modalities on reconciliation)
	// or "reconciled" (always on reconciliation).
	BillingTrigger   string   `yaml:"billing_trigger" help:"mpps (MPPS COMPLETED; no_mpps_modalities on reconciliation) or reconciled"`
	NoMPPSModalities []string `yaml:"no_mpps_modalities" help:"comma-separated modalities that send no MPPS: billed on reconciliation"`
	// HeuristicMatching lets reconciliation match a study to an order by
	// Patient ID, modality and date when no key matches.
	HeuristicMatching bool          `yaml:"heuristic_matching" help:"match studies to orders by Patient ID + modality + date when no key matches"`
	HeuristicWindow   time.Duration `yaml:"heuristic_window" help:"how far apart study and scheduled date may be for a heuristic match"`
}

// FHIR is the FHIR R4 API and the push to EMRs.
type FHIR struct {
	// BaseURL is this hub's public FHIR base (fullUrl of resources,
	// Endpoint addresses); empty: from each request's Host.
	BaseURL string `yaml:"base_url" help:"public base URL of this hub's /fhir; empty: from each request's Host"`
	// PushURL is one EMR FHIR base to push to; Targets lists more.
	PushURL  string `yaml:"push_url" secret:"url" help:"FHIR base URL of an EMR to push ImagingStudy and friends to; empty: no push"`
	PushAuth string `yaml:"push_auth" help:"none, bearer or client_credentials (SMART Backend Services)"`
	// PushToken is the bearer token (push_auth bearer).
	PushToken string `yaml:"push_token" secret:"value" help:"bearer token for push_auth bearer"`
	// OAuth2 client credentials (push_auth client_credentials).
	PushTokenURL     string        `yaml:"push_token_url" help:"OAuth2 token endpoint for client_credentials"`
	PushClientID     string        `yaml:"push_client_id" help:"OAuth2 client id"`
	PushClientSecret string        `yaml:"push_client_secret" secret:"value" help:"OAuth2 client secret"`
	PushScope        string        `yaml:"push_scope" help:"OAuth2 scope, e.g. system/ImagingStudy.write"`
	Targets          []FHIRTarget  `yaml:"targets" env:"-"`
	PushAttempts     int           `yaml:"push_attempts" help:"tries before a push is dead-lettered"`
	PushTimeout      time.Duration `yaml:"push_timeout" help:"timeout of one push request"`
}

// FHIRTarget is one EMR to push to (YAML only).
type FHIRTarget struct {
	Name         string `yaml:"name"`
	URL          string `yaml:"url"`
	Auth         string `yaml:"auth,omitempty"`
	Token        string `yaml:"token,omitempty"`
	TokenURL     string `yaml:"token_url,omitempty"`
	ClientID     string `yaml:"client_id,omitempty"`
	ClientSecret string `yaml:"client_secret,omitempty"`
	Scope        string `yaml:"scope,omitempty"`
	// Transaction sends each study's resources as one transaction Bundle.
	Transaction bool `yaml:"transaction,omitempty"`
}

// Log is logging.
type Log struct {
	Level  string `yaml:"level" help:"debug, info, warn or error (patient data appears only at debug)"`
	Format string `yaml:"format" help:"json or text"`
}

// Default returns the embedded defaults: nothing installed, everything in
// ./data.
func Default() Config {
	return Config{
		Data: Data{Dir: "./data", DirectIO: true, IntakeJournalBytes: 256 << 20},
		HTTP: HTTP{Addr: ":8080", ShutdownTimeout: 30 * time.Second},
		DICOM: DICOM{
			Addr:            ":11112",
			AE:              "IMAGINGHUB",
			MaxAssociations: 100,
			ARTIMTimeout:    30 * time.Second,
			IdleTimeout:     5 * time.Minute,
			MaxPDULength:    1 << 20,
			DuplicatePolicy: "keep-first",
		},
		DICOMweb: DICOMweb{MaxQueryResults: 1000, MaxStoreBytes: 16 << 30, MetadataCacheBytes: 64 << 20},
		HL7: HL7{
			Addr:           ":2575",
			Application:    "IMAGINGHUB",
			Facility:       "IMAGINGHUB",
			MaxMessageSize: 1 << 20,
			MaxConnections: 1024,
			IdleTimeout:    10 * time.Minute,
			SendTimeout:    30 * time.Second,
			SendAttempts:   10,
		},
		NATS:     NATS{Listen: "127.0.0.1:4223", Replicas: 1},
		Redis:    Redis{KeyPrefix: "ih:"},
		Study:    Study{StableAfter: 60 * time.Second},
		Events:   Events{MaxAge: 7 * 24 * time.Hour, DuplicateWindow: 10 * time.Minute},
		Worklist: Worklist{MaxMatches: 5000},
		Workflow: Workflow{RISStatusFormat: "orm", BillingTrigger: "mpps", HeuristicWindow: 24 * time.Hour},
		FHIR:     FHIR{PushAuth: "none", PushAttempts: 10, PushTimeout: 30 * time.Second},
		Log:      Log{Level: "info", Format: "json"},
	}
}

// Error is a configuration error about one key.
type Error struct {
	Key string // YAML path, e.g. "database.url"
	Env string // environment variable, e.g. IMAGINGHUB_DATABASE_URL
	Err error
}

func (e *Error) Error() string {
	return fmt.Sprintf("config %s (%s): %v", e.Key, e.Env, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Load builds the effective configuration: defaults, then the YAML file at
// path (if path is not empty), then environment variables from environ
// (os.Environ() form). Variables IMAGINGHUB_TEST_* belong to the test suite
// and are ignored.
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config file: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) /* empty file */ {
			return cfg, fmt.Errorf("config file %s: %s", path, yamlError(err))
		}
	}
	keys := Keys()
	byEnv := make(map[string]Key, len(keys))
	for _, k := range keys {
		byEnv[k.Env] = k
	}
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || strings.HasPrefix(name, EnvPrefix+"TEST_") {
			continue
		}
		k, ok := byEnv[name]
		if !ok {
			return cfg, &Error{Key: "?", Env: name, Err: errors.New("unknown configuration variable")}
		}
		if err := setString(k.field(&cfg), val); err != nil {
			return cfg, &Error{Key: k.Path, Env: k.Env, Err: err}
		}
	}
	return cfg, cfg.Validate()
}

// yamlError renders a YAML decoding error on one line, naming unknown keys
// plainly ("line 3: unknown key \"adr\" in http").
func yamlError(err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	msgs := make([]string, 0, len(te.Errors))
	for _, m := range te.Errors {
		m = strings.TrimSpace(m)
		if before, after, ok := strings.Cut(m, ": field "); ok {
			if name, typ, ok := strings.Cut(after, " not found in type config."); ok {
				section := strings.ToLower(typ)
				if section == "config" {
					m = fmt.Sprintf("%s: unknown section %q", before, name)
				} else {
					m = fmt.Sprintf("%s: unknown key %q in %s", before, name, section)
				}
			}
		}
		msgs = append(msgs, m)
	}
	return strings.Join(msgs, "; ")
}

// Key describes one configuration key.
type Key struct {
	Path   string // section.key as in YAML
	Env    string // IMAGINGHUB_SECTION_KEY
	Help   string
	Secret bool
	// secretKind is "url" (hide the URL's password) or "value" (hide it all).
	secretKind string
	index      []int
}

func (k Key) field(cfg *Config) reflect.Value {
	return reflect.ValueOf(cfg).Elem().FieldByIndex(k.index)
}

// Keys lists every configuration key in declaration order.
func Keys() []Key {
	var keys []Key
	t := reflect.TypeOf(Config{})
	for i := 0; i < t.NumField(); i++ {
		sec := t.Field(i)
		secName := yamlName(sec)
		for j := 0; j < sec.Type.NumField(); j++ {
			f := sec.Type.Field(j)
			if f.Tag.Get("env") == "-" {
				continue // structured; YAML only
			}
			name := yamlName(f)
			keys = append(keys, Key{
				Path:       secName + "." + name,
				Env:        EnvPrefix + strings.ToUpper(secName+"_"+name),
				Help:       f.Tag.Get("help"),
				Secret:     f.Tag.Get("secret") != "",
				secretKind: f.Tag.Get("secret"),
				index:      []int{i, j},
			})
		}
	}
	return keys
}

func yamlName(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return n
}

var durationType = reflect.TypeOf(time.Duration(0))

func setString(v reflect.Value, s string) error {
	if tu, ok := v.Addr().Interface().(encoding.TextUnmarshaler); ok {
		return tu.UnmarshalText([]byte(s))
	}
	switch {
	case v.Type() == durationType:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("not a duration (like 30s, 5m): %q", s)
		}
		v.SetInt(int64(d))
	case v.Kind() == reflect.String:
		v.SetString(s)
	case v.Kind() == reflect.Int, v.Kind() == reflect.Int64:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("not an integer: %q", s)
		}
		v.SetInt(int64(n))
	case v.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("not a boolean: %q", s)
		}
		v.SetBool(b)
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var items []string
		for _, it := range strings.Split(s, ",") {
			if it = strings.TrimSpace(it); it != "" {
				items = append(items, it)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}

// Validate checks every key's value; the error names the first bad key.
func (c Config) Validate() error {
	bad := func(path string, format string, a ...any) error {
		return &Error{Key: path, Env: EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_")), Err: fmt.Errorf(format, a...)}
	}
	if c.Data.Dir == "" {
		return bad("data.dir", "must not be empty")
	}
	for path, addr := range map[string]string{"http.addr": c.HTTP.Addr, "dicom.addr": c.DICOM.Addr, "hl7.addr": c.HL7.Addr} {
		if err := checkAddr(addr); err != nil {
			return bad(path, "%v", err)
		}
	}
	for path, addr := range map[string]string{"ris.mllp_addr": c.RIS.MLLPAddr, "pms.mllp_addr": c.PMS.MLLPAddr} {
		if addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return bad(path, "%q is not host:port", addr)
		}
	}
	if (c.HL7.TLSCert == "") != (c.HL7.TLSKey == "") {
		return bad("hl7.tls_cert", "set both hl7.tls_cert and hl7.tls_key, or neither")
	}
	if c.DICOMweb.PublicURL != "" {
		if u, err := url.Parse(c.DICOMweb.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("dicomweb.public_url", "%q: want http(s)://host[:port]", c.DICOMweb.PublicURL)
		}
	}
	if c.DICOMweb.MaxQueryResults < 1 {
		return bad("dicomweb.max_query_results", "must be at least 1")
	}
	if c.HL7.MaxMessageSize < 1024 {
		return bad("hl7.max_message_size", "must be at least 1024")
	}
	if c.HL7.SendAttempts < 1 {
		return bad("hl7.send_attempts", "must be at least 1")
	}
	if c.NATS.Listen != "" {
		if err := checkAddr(c.NATS.Listen); err != nil {
			return bad("nats.listen", "%v", err)
		}
	}
	if err := checkAE(c.DICOM.AE); err != nil {
		return bad("dicom.ae", "%v", err)
	}
	for _, ae := range c.DICOM.AllowedCallingAEs {
		name, _, _ := strings.Cut(ae, "@")
		if err := checkAE(name); err != nil {
			return bad("dicom.allowed_calling_aes", "%q: %v", ae, err)
		}
	}
	switch c.DICOM.DuplicatePolicy {
	case "keep-first", "replace", "reject":
	default:
		return bad("dicom.duplicate_policy", "%q: want keep-first, replace or reject", c.DICOM.DuplicatePolicy)
	}
	if c.DICOM.MaxAssociations < 1 {
		return bad("dicom.max_associations", "must be at least 1")
	}
	if c.DICOM.MaxPDULength < 4096 || c.DICOM.MaxPDULength > 1<<26 {
		return bad("dicom.max_pdu_length", "must be between 4096 and 67108864")
	}
	if err := checkURL(c.NATS.URL, "nats", "tls", "ws", "wss"); err != nil {
		return bad("nats.url", "%v", err)
	}
	if err := checkURL(c.Database.URL, "postgres", "postgresql"); err != nil {
		return bad("database.url", "%v", err)
	}
	if err := checkURL(c.Redis.URL, "redis", "rediss"); err != nil {
		return bad("redis.url", "%v", err)
	}
	if c.NATS.Replicas < 1 || c.NATS.Replicas > 5 {
		return bad("nats.replicas", "must be between 1 and 5")
	}
	if _, err := ParseRemotes(c.DICOM.Remotes); err != nil {
		return bad("dicom.remotes", "%v", err)
	}
	if err := c.Router.validate(); err != nil {
		return &Error{Key: "router", Env: "(YAML only)", Err: err}
	}
	if c.Worklist.MaxMatches < 1 {
		return bad("worklist.max_matches", "must be at least 1")
	}
	switch c.Workflow.RISStatusFormat {
	case "orm", "omi":
	default:
		return bad("workflow.ris_status_format", "%q: want orm or omi", c.Workflow.RISStatusFormat)
	}
	switch c.Workflow.BillingTrigger {
	case "mpps", "reconciled":
	default:
		return bad("workflow.billing_trigger", "%q: want mpps or reconciled", c.Workflow.BillingTrigger)
	}
	for path, u := range map[string]string{"fhir.base_url": c.FHIR.BaseURL, "fhir.push_url": c.FHIR.PushURL, "fhir.push_token_url": c.FHIR.PushTokenURL} {
		if err := checkURL(u, "http", "https"); err != nil {
			return bad(path, "%v", err)
		}
	}
	switch c.FHIR.PushAuth {
	case "none", "bearer", "client_credentials":
	default:
		return bad("fhir.push_auth", "%q: want none, bearer or client_credentials", c.FHIR.PushAuth)
	}
	for i, t := range c.FHIR.Targets {
		if err := checkURL(t.URL, "http", "https"); err != nil || t.URL == "" || t.Name == "" {
			return &Error{Key: "fhir.targets", Env: "(YAML only)", Err: fmt.Errorf("target %d needs a name and an http(s) url", i+1)}
		}
	}
	if c.Study.StableAfter <= 0 {
		return bad("study.stable_after", "must be positive")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return bad("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return bad("log.format", "%q: want json or text", c.Log.Format)
	}
	return nil
}

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port", addr)
	}
	return nil
}

// checkAE applies PS3.5 §6.2 (AE VR): 1–16 characters of the default
// repertoire, no backslash or control characters, not all spaces.
func checkAE(ae string) error {
	if strings.TrimSpace(ae) == "" || len(ae) > 16 {
		return fmt.Errorf("%q: an AE title has 1 to 16 characters", ae)
	}
	for _, r := range ae {
		if r < 0x20 || r > 0x7e || r == '\\' {
			return fmt.Errorf("%q: an AE title has no backslash or control characters", ae)
		}
	}
	return nil
}

// checkURL accepts "" (the embedded default) or a URL with one of schemes.
// A comma-separated list is accepted for NATS cluster seeds.
func checkURL(s string, schemes ...string) error {
	if s == "" {
		return nil
	}
	for _, one := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil {
			return fmt.Errorf("not a URL: %s", redactErr(err))
		}
		ok := false
		for _, sc := range schemes {
			ok = ok || u.Scheme == sc
		}
		if !ok {
			return fmt.Errorf("scheme %q not supported (want %s://)", u.Scheme, strings.Join(schemes, ":// or "))
		}
		if u.Host == "" && u.Scheme != "postgres" && u.Scheme != "postgresql" {
			return fmt.Errorf("%s has no host", Redact(one))
		}
	}
	return nil
}

// redactErr drops the URL from url.Parse errors, which would carry a password.
func redactErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "malformed"
}

// Redact hides the password of a URL (or of each URL in a comma list).
func Redact(s string) string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		u, err := url.Parse(strings.TrimSpace(p))
		if err != nil {
			parts[i] = "(unparseable URL)"
			continue
		}
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
		q := u.Query()
		for _, k := range []string{"password", "token", "secret"} {
			if q.Has(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
		parts[i] = u.String()
	}
	return strings.Join(parts, ",")
}

// Redacted returns a copy of c with secrets hidden, for printing.
func (c Config) Redacted() Config {
	out := c
	out.FHIR.Targets = append([]FHIRTarget(nil), c.FHIR.Targets...)
	for i := range out.FHIR.Targets {
		t := &out.FHIR.Targets[i]
		for _, f := range []*string{&t.Token, &t.ClientSecret} {
			if *f != "" {
				*f = "xxxxx"
			}
		}
	}
	out.Router.Destinations = append([]Destination(nil), c.Router.Destinations...)
	for i := range out.Router.Destinations {
		d := &out.Router.Destinations[i]
		if d.Secret != "" {
			d.Secret = "xxxxx"
		}
		d.URL = Redact(d.URL)
	}
	for _, k := range Keys() {
		if !k.Secret {
			continue
		}
		v := k.field(&out)
		if v.Kind() != reflect.String || v.String() == "" {
			continue
		}
		if k.secretKind == "value" {
			v.SetString("xxxxx")
		} else {
			v.SetString(Redact(v.String()))
		}
	}
	return out
}

// YAML renders c as YAML (durations as strings such as 60s).
func (c Config) YAML() ([]byte, error) {
	m := yaml.Node{Kind: yaml.MappingNode}
	t := reflect.TypeOf(c)
	v := reflect.ValueOf(c)
	for i := 0; i < t.NumField(); i++ {
		sec := yaml.Node{Kind: yaml.MappingNode}
		st := t.Field(i).Type
		for j := 0; j < st.NumField(); j++ {
			fv := v.Field(i).Field(j)
			var val yaml.Node
			if fv.Type() == durationType {
				val = yaml.Node{Kind: yaml.ScalarNode, Value: time.Duration(fv.Int()).String()}
			} else if err := val.Encode(fv.Interface()); err != nil {
				return nil, err
			}
			sec.Content = append(sec.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: yamlName(st.Field(j))}, &val)
		}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: yamlName(t.Field(i))}, &sec)
	}
	return yaml.Marshal(&m)
}

// EnvNames lists every environment variable, sorted; for documentation.
func EnvNames() []string {
	var names []string
	for _, k := range Keys() {
		names = append(names, k.Env)
	}
	sort.Strings(names)
	return names
}

// Default renders the key's value in cfg for documentation ("" shows as
// "empty").
func (k Key) Default(cfg Config) string {
	if s := formatValue(k.field(&cfg)); s != "" {
		return s
	}
	return "empty"
}

// formatValue renders a key's value as its environment variable takes it.
func formatValue(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = v.Index(i).String()
		}
		return strings.Join(parts, ",")
	}
	return fmt.Sprint(v.Interface())
}

// Environ renders c as IMAGINGHUB_* variables, the inverse of Load for
// every key that has one (router rules and FHIR targets are YAML only):
// for handing a configuration to a child process.
func (c Config) Environ() []string {
	var env []string
	for _, k := range Keys() {
		env = append(env, k.Env+"="+formatValue(k.field(&c)))
	}
	return env
}
