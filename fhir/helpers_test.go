package fhir_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/internal/testenv"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/fhir"
	hisbridge "github.com/imaginghub/imaginghub/his-bridge"
	"github.com/imaginghub/imaginghub/hl7"
	"github.com/imaginghub/imaginghub/hl7intake"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
	risbridge "github.com/imaginghub/imaginghub/ris-bridge"
)

// testHub is a hub with ingest, the HL7 listener, both bridges and the
// FHIR component, on real sockets.
type testHub struct {
	rt     *hub.Runtime
	fhir   *fhir.FHIR
	in     *ingest.Ingest
	hl7    *hl7.Client
	base   string // http://host:port/fhir
	mu     sync.Mutex
	events []events.Event
}

func testConfig(t *testing.T) config.Config {
	cfg := hubtest.Config(t)
	cfg.Study.StableAfter = 300 * time.Millisecond
	return cfg
}

func startHub(t *testing.T, cfg config.Config, opts fhir.Options) *testHub {
	t.Helper()
	th := &testHub{}
	var l *hl7intake.Listener
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if len(opts.PushBackOff) == 0 {
		opts.PushBackOff = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond}
	}
	if len(opts.NotifyBackOff) == 0 {
		opts.NotifyBackOff = []time.Duration{100 * time.Millisecond, 200 * time.Millisecond}
	}
	if opts.PushTimeout == 0 {
		opts.PushTimeout = 5 * time.Second
	}
	th.rt = hubtest.Start(t, cfg, func(rt *hub.Runtime) {
		var err error
		if th.in, err = ingest.New(rt); err != nil {
			t.Fatal(err)
		}
		if l, err = hl7intake.New(rt, append(hisbridge.Routes(), risbridge.Routes()...)...); err != nil {
			t.Fatal(err)
		}
		his, err := hisbridge.New(rt)
		if err != nil {
			t.Fatal(err)
		}
		ris, err := risbridge.New(rt)
		if err != nil {
			t.Fatal(err)
		}
		if th.fhir, err = fhir.New(rt, opts); err != nil {
			t.Fatal(err)
		}
		for _, c := range []hub.Component{th.in, l, his, ris, th.fhir} {
			rt.Server.Add(c)
		}
	})
	th.hl7 = &hl7.Client{Addr: l.Addr(), Timeout: 10 * time.Second}
	t.Cleanup(func() { th.hl7.Close() })
	th.base = "http://" + th.rt.Server.HTTPAddr() + "/fhir"
	c, err := th.rt.Bus.Consume(context.Background(), events.ConsumerSpec{
		Name:           fmt.Sprintf("fhirtest-%d", time.Now().UnixNano()),
		FilterSubjects: []string{events.TypeFHIRPublished},
	}, func(_ context.Context, e events.Event, _ events.Delivery) error {
		th.mu.Lock()
		th.events = append(th.events, e)
		th.mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Stop)
	return th
}

func (th *testHub) published() []fhir.Published {
	th.mu.Lock()
	defer th.mu.Unlock()
	var out []fhir.Published
	for _, e := range th.events {
		var p fhir.Published
		json.Unmarshal(e.Data, &p)
		out = append(out, p)
	}
	return out
}

// sendHL7 sends one message over MLLP and wants AA.
func (th *testHub) sendHL7(t *testing.T, msg string) {
	t.Helper()
	ack, err := th.hl7.Send(context.Background(), []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if ack.Get("MSA-1") != "AA" {
		t.Fatalf("MSA-1 %q: %s", ack.Get("MSA-1"), ack.Get("MSA-3"))
	}
}

// store sends n synthetic instances of one series with storescu.
func (th *testHub) store(t *testing.T, n int, o synth.Options) {
	t.Helper()
	testenv.DCMTK(t, "storescu")
	o.Rows, o.Columns = 16, 16
	paths, err := synth.WriteStudy(t.TempDir(), n, o)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(th.in.Addr())
	args := append([]string{"-xi", "-aec", "IMAGINGHUB", "-aet", "CT01", host, port}, paths...)
	if out, err := exec.Command("storescu", args...).CombinedOutput(); err != nil {
		t.Fatalf("storescu: %v\n%s", err, out)
	}
}

// get fetches a FHIR URL and decodes the JSON answer.
func get(t *testing.T, u string, v any) (int, http.Header) {
	t.Helper()
	rsp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %v: %s", u, err, b)
		}
	}
	return rsp.StatusCode, rsp.Header
}

// received is one request the test EMR accepted.
type received struct {
	Method, Path, Query string
	IfNoneExist         string
	Body                map[string]any
	Raw                 []byte
	At                  time.Time
}

// testEMR is a FHIR server just big enough to take the hub's pushes:
// conditional create of Patient, conditional update by identifier,
// transactions, OAuth2 client credentials and bearer tokens; and it can be
// taken down.
type testEMR struct {
	t   *testing.T
	srv *httptest.Server

	clientID, clientSecret string

	mu       sync.Mutex
	down     bool
	bearer   string // a fixed token also accepted
	reject   string // resource type answered 422
	denied   int    // requests refused with 401
	tokens   map[string]bool
	patients map[string]int // If-None-Exist query -> id
	got      []received
	tokenReq int
}

func newEMR(t *testing.T) *testEMR {
	e := &testEMR{t: t, clientID: "hub client", clientSecret: "s3cret&more", tokens: map[string]bool{}, patients: map[string]int{}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *testEMR) setDown(down bool) {
	e.mu.Lock()
	e.down = down
	e.mu.Unlock()
}

func (e *testEMR) requests() []received {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]received(nil), e.got...)
}

// resources returns the bodies of the accepted PUTs of typ.
func (e *testEMR) resources(typ string) []received {
	var out []received
	for _, r := range e.requests() {
		if r.Method == http.MethodPut && r.Path == "/"+typ {
			out = append(out, r)
		}
		if r.Method == http.MethodPost && r.Path == "/" && r.Body["resourceType"] == "Bundle" {
			for _, en := range r.Body["entry"].([]any) {
				res := en.(map[string]any)["resource"].(map[string]any)
				if res["resourceType"] == typ {
					raw, _ := json.Marshal(res)
					out = append(out, received{Method: "PUT", Path: "/" + typ, Body: res, Raw: raw, At: r.At})
				}
			}
		}
	}
	return out
}

func (e *testEMR) serve(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.down {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	if r.URL.Path == "/token" {
		e.tokenReq++
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		r.ParseForm()
		if !ok || id != e.clientID || secret != e.clientSecret || r.PostForm.Get("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"error":"invalid_client"}`)
			return
		}
		tok := "tok-" + strconv.Itoa(e.tokenReq)
		e.tokens[tok] = true
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":300,"scope":%q}`, tok, r.PostForm.Get("scope"))
		return
	}
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !e.tokens[tok] && (e.bearer == "" || tok != e.bearer) {
		e.denied++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if e.reject != "" && strings.HasPrefix(r.URL.Path, "/"+e.reject) {
		w.Header().Set("Content-Type", "application/fhir+json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		io.WriteString(w, `{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"business-rule"}]}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	if _, err := fhir.Unmarshal(body); err != nil {
		e.t.Errorf("EMR got an invalid resource on %s %s: %v\n%s", r.Method, r.URL, err, body)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	rec := received{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, IfNoneExist: r.Header.Get("If-None-Exist"), Raw: body, At: time.Now()}
	json.Unmarshal(body, &rec.Body)
	e.got = append(e.got, rec)
	w.Header().Set("Content-Type", "application/fhir+json")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/Patient":
		id, ok := e.patients[rec.IfNoneExist]
		status := http.StatusOK
		if !ok {
			id = 100 + len(e.patients)
			e.patients[rec.IfNoneExist] = id
			status = http.StatusCreated
		}
		w.Header().Set("Location", fmt.Sprintf("%s/Patient/%d/_history/1", e.srv.URL, id))
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"resourceType":"Patient","id":"%d"}`, id)
	case r.Method == http.MethodPut && r.URL.RawQuery != "":
		w.WriteHeader(http.StatusOK)
		w.Write(body)
	case r.Method == http.MethodPost && r.URL.Path == "/":
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, `{"resourceType":"Bundle","type":"transaction-response"}`)
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

func (e *testEMR) target(name string, transaction bool) fhir.Target {
	return fhir.Target{Name: name, URL: e.srv.URL, Auth: fhir.AuthClientCredentials, TokenURL: e.srv.URL + "/token",
		ClientID: e.clientID, ClientSecret: e.clientSecret, Scope: "system/ImagingStudy.write system/Patient.write", Transaction: transaction}
}

func dig(m map[string]any, path ...any) any {
	var cur any = m
	for _, p := range path {
		switch k := p.(type) {
		case string:
			mm, _ := cur.(map[string]any)
			cur = mm[k]
		case int:
			a, _ := cur.([]any)
			if k >= len(a) {
				return nil
			}
			cur = a[k]
		}
	}
	return cur
}

var _ = filepath.Join
