package fhir

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	drpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/diagnostic_report_go_proto"
	ispb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/imaging_study_go_proto"
	ppb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/patient_go_proto"
	srpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/service_request_go_proto"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
	"github.com/imaginghub/imaginghub/outbox"
)

// Authentication of a push target.
const (
	AuthNone = "none"
	// AuthBearer sends a fixed token (RFC 6750).
	AuthBearer = "bearer"
	// AuthClientCredentials gets tokens from the target's token endpoint
	// with the OAuth 2.0 client credentials grant (RFC 6749 §4.4), the
	// client authenticating with client_secret_basic (§2.3.1) as SMART
	// Backend Services allows for confidential symmetric clients.
	AuthClientCredentials = "client_credentials"
)

// Target is one EMR the hub pushes to.
type Target struct {
	// Name names the target in subjects, consumers and metrics: letters,
	// digits, '-' and '_'.
	Name string
	// URL is the target's FHIR base.
	URL          string
	Auth         string
	Token        string
	TokenURL     string
	ClientID     string
	ClientSecret string
	Scope        string
	// Transaction sends a study's resources as one transaction Bundle
	// (R4 §3.1.0.11) instead of one request each.
	Transaction bool

	cache *tokenCache
}

// tokenCache holds a target's current access token.
type tokenCache struct {
	mu      sync.Mutex
	token   string
	expires time.Time
}

func (t *Target) validate() error {
	if t.Name == "" || strings.ContainsAny(t.Name, ".*> \t\r\n/\\") {
		return fmt.Errorf("%w: push target name %q (letters, digits, '-' and '_')", ErrConfig, t.Name)
	}
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: push target %s: url %q is not an http(s) URL", ErrConfig, t.Name, t.URL)
	}
	t.URL = strings.TrimRight(t.URL, "/")
	t.cache = &tokenCache{}
	switch t.Auth {
	case "", AuthNone:
		t.Auth = AuthNone
	case AuthBearer:
		if t.Token == "" {
			return fmt.Errorf("%w: push target %s: bearer auth needs a token", ErrConfig, t.Name)
		}
	case AuthClientCredentials:
		if t.TokenURL == "" || t.ClientID == "" || t.ClientSecret == "" {
			return fmt.Errorf("%w: push target %s: client_credentials needs token_url, client_id and client_secret", ErrConfig, t.Name)
		}
	default:
		return fmt.Errorf("%w: push target %s: auth %q (want none, bearer or client_credentials)", ErrConfig, t.Name, t.Auth)
	}
	return nil
}

// authorization returns the Authorization header value, fetching a token
// when the cached one is missing or about to expire.
func (t *Target) authorization(ctx context.Context, c *http.Client) (string, error) {
	switch t.Auth {
	case AuthBearer:
		return "Bearer " + t.Token, nil
	case AuthClientCredentials:
	default:
		return "", nil
	}
	tc := t.cache
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.token != "" && time.Now().Before(tc.expires) {
		return "Bearer " + tc.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if t.Scope != "" {
		form.Set("scope", t.Scope)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 §2.3.1: id and secret form-urlencoded, then Basic.
	req.SetBasicAuth(url.QueryEscape(t.ClientID), url.QueryEscape(t.ClientSecret))
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("fhir: token endpoint: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("fhir: token endpoint answered %s", resp.Status)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("fhir: token endpoint: no access_token in the answer")
	}
	if !strings.EqualFold(tok.TokenType, "bearer") {
		return "", fmt.Errorf("fhir: token endpoint: token type %q is not bearer", tok.TokenType)
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life <= 0 {
		life = 5 * time.Minute
	}
	// Renew a little early so a token never expires in flight.
	tc.token, tc.expires = tok.AccessToken, time.Now().Add(life*9/10)
	return "Bearer " + tc.token, nil
}

func (t *Target) dropToken() {
	if t.cache != nil {
		t.cache.mu.Lock()
		t.cache.token = ""
		t.cache.mu.Unlock()
	}
}

// pushJob is one queued push: the version that caused it. The worker
// pushes the current version, which is never older.
type pushJob struct {
	Type      string `json:"resourceType"`
	ID        string `json:"id"`
	VersionID int64  `json:"versionId"`
}

func (f *FHIR) queuePush(ctx context.Context, t *Target, st Stored) error {
	b, _ := json.Marshal(pushJob{Type: st.Type, ID: st.ID, VersionID: st.VersionID})
	msgID := events.ID("fhir.push", t.Name, st.Type, st.ID, strconv.FormatInt(st.VersionID, 10))
	if _, err := f.rt.Bus.PublishRaw(ctx, pushSubjectRoot+t.Name, msgID, b, nil); err != nil {
		return fmt.Errorf("fhir: queue push to %s: %w", t.Name, err)
	}
	return nil
}

// Published is the data of ih.fhir.published: a version a target accepted.
type Published struct {
	Target       string `json:"target"`
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	VersionID    int64  `json:"versionId"`
	// Location is where the target keeps it, when it said.
	Location string `json:"location,omitempty"`
}

func (f *FHIR) pushHandler(t *Target) events.RawHandler {
	return func(ctx context.Context, d events.Delivery) error {
		var job pushJob
		if err := json.Unmarshal(d.Data, &job); err != nil || job.ID == "" {
			return events.Permanent(fmt.Errorf("fhir: push job: %v", err))
		}
		var pushed int64
		err := f.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
			return tx.QueryRowContext(ctx, `SELECT version_id FROM fhir_pushed WHERE target = ? AND resource_type = ? AND id = ?`, t.Name, job.Type, job.ID).Scan(&pushed)
		})
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if pushed >= job.VersionID {
			f.metrics.pushes.WithLabelValues(t.Name, "stale").Inc()
			return nil // a newer version went out already: this one is stale
		}
		cur, err := f.store.Get(ctx, job.Type, job.ID)
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrGone) {
			return nil
		}
		if err != nil {
			return err
		}
		began := time.Now()
		loc, err := f.push(ctx, t, cur)
		if err != nil {
			outcome := "failed"
			if events.IsPermanent(err) {
				outcome = "refused"
			}
			f.metrics.pushes.WithLabelValues(t.Name, outcome).Inc()
			f.log.WarnContext(ctx, "FHIR push failed", "target", t.Name, "resource", job.Type, "delivery", d.NumDelivered, "err", err)
			return err
		}
		ev, err := events.New(Source, events.TypeFHIRPublished, job.Type+"/"+job.ID,
			Published{Target: t.Name, ResourceType: job.Type, ID: job.ID, VersionID: cur.VersionID, Location: loc},
			t.Name, job.Type, job.ID, strconv.FormatInt(cur.VersionID, 10))
		if err != nil {
			return err
		}
		m, err := outbox.Message(ev)
		if err != nil {
			return err
		}
		err = f.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
			_, err := tx.ExecContext(ctx, `INSERT INTO fhir_pushed (target, resource_type, id, version_id, pushed_at) VALUES (?, ?, ?, ?, ?)
				ON CONFLICT (target, resource_type, id) DO UPDATE SET version_id = excluded.version_id, pushed_at = excluded.pushed_at
				WHERE fhir_pushed.version_id < excluded.version_id`,
				t.Name, job.Type, job.ID, cur.VersionID, time.Now().UTC().Format(instantLayout))
			if err == nil {
				tx.AppendOutbox(m)
			}
			return err
		})
		if err != nil {
			return err
		}
		f.rt.Relay.Kick()
		f.metrics.pushes.WithLabelValues(t.Name, "accepted").Inc()
		f.metrics.pushSeconds.WithLabelValues(t.Name).Observe(time.Since(began).Seconds())
		f.log.DebugContext(ctx, "FHIR push accepted", "target", t.Name, "resource", job.Type, "id", job.ID, "version", cur.VersionID)
		return nil
	}
}

// errRejected marks a target's refusal that retrying will not change.
var errRejected = errors.New("fhir: target rejected the resource")

// push sends the current version of a resource, with its patient, to t.
// It returns the location the target gave the resource.
func (f *FHIR) push(ctx context.Context, t *Target, cur Stored) (string, error) {
	cr, err := Unmarshal(cur.JSON)
	if err != nil {
		return "", events.Permanent(err)
	}
	res := Resource(cr)
	var patient *ppb.Patient
	if ref := refString(subjectOf(res)); strings.HasPrefix(ref, "Patient/") {
		pst, err := f.store.Get(ctx, "Patient", strings.TrimPrefix(ref, "Patient/"))
		if err != nil {
			return "", err
		}
		pcr, err := Unmarshal(pst.JSON)
		if err != nil {
			return "", events.Permanent(err)
		}
		patient = pcr.GetPatient()
	}
	cond := conditionalURL(res)
	if err := f.outgoing(ctx, res); err != nil {
		return "", err
	}
	if t.Transaction {
		return f.pushTransaction(ctx, t, res, patient, cond)
	}
	if patient != nil {
		loc, err := f.send(ctx, t, http.MethodPost, t.URL+"/Patient", outgoingPatient(patient), patientCondition(patient))
		if err != nil {
			return "", fmt.Errorf("patient: %w", err)
		}
		if r := relativeRef(loc, "Patient"); strings.HasPrefix(r, "Patient/") {
			setSubject(res, ref(r))
		} else if len(patient.Identifier) > 0 {
			// The target did not say where it keeps the patient: name it
			// by identifier instead (R4 §2.3.0.4 logical reference).
			setSubject(res, identifierRef("Patient", outgoingPatient(patient).Identifier[0]))
		}
	}
	return f.send(ctx, t, http.MethodPut, t.URL+"/"+cond, res, "")
}

func subjectOf(res proto.Message) *dpb.Reference {
	switch r := res.(type) {
	case *ispb.ImagingStudy:
		return r.Subject
	case *drpb.DiagnosticReport:
		return r.Subject
	}
	return nil
}

func setSubject(res proto.Message, s *dpb.Reference) {
	switch r := res.(type) {
	case *ispb.ImagingStudy:
		r.Subject = s
	case *drpb.DiagnosticReport:
		r.Subject = s
	}
}

// conditionalURL is the conditional update of a pushed resource by its
// business identifier (R4 §3.1.0.4.3), so that the target keeps one
// record per study or report whatever its own ids are.
func conditionalURL(res proto.Message) string {
	switch r := res.(type) {
	case *ispb.ImagingStudy:
		return "ImagingStudy?identifier=" + url.QueryEscape(systemDICOMUID+"|urn:oid:"+r.GetId().GetValue())
	case *drpb.DiagnosticReport:
		if len(r.GetIdentifier()) > 0 {
			id := r.GetIdentifier()[0]
			return "DiagnosticReport?identifier=" + url.QueryEscape(id.GetSystem().GetValue()+"|"+id.GetValue().GetValue())
		}
	}
	return ResourceType(res)
}

// patientCondition is the If-None-Exist query of a conditional create of
// the patient (R4 §3.1.0.8.1), by its first identifier with a system.
func patientCondition(p *ppb.Patient) string {
	for _, id := range p.Identifier {
		if id.GetSystem().GetValue() != "" {
			return "identifier=" + url.QueryEscape(id.GetSystem().GetValue()+"|"+id.GetValue().GetValue())
		}
	}
	if len(p.Identifier) > 0 {
		return "identifier=" + url.QueryEscape(p.Identifier[0].GetValue().GetValue())
	}
	return ""
}

// outgoingPatient is the patient as sent: without the hub's id, meta and
// links to the hub's other records.
func outgoingPatient(p *ppb.Patient) *ppb.Patient {
	p = proto.Clone(p).(*ppb.Patient)
	p.Id, p.Meta, p.Link = nil, nil, nil
	return p
}

// outgoing rewrites a resource for a target that knows none of the hub's
// ids: the Endpoint goes contained, orders and studies become logical
// references by their identifiers (R4 §2.3.0.4).
func (f *FHIR) outgoing(ctx context.Context, res proto.Message) error {
	logical := func(r *dpb.Reference) (*dpb.Reference, error) {
		s := refString(r)
		typ, id, ok := strings.Cut(s, "/")
		if !ok {
			return r, nil
		}
		switch typ {
		case "ImagingStudy":
			return identifierRef(typ, StudyIdentifier(id)), nil
		case "ServiceRequest":
			st, err := f.store.Get(ctx, typ, id)
			if errors.Is(err, ErrNotFound) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			cr, err := Unmarshal(st.JSON)
			if err != nil {
				return nil, err
			}
			ids := cr.GetServiceRequest().GetIdentifier()
			if len(ids) == 0 {
				return nil, nil
			}
			return identifierRef(typ, ids[0]), nil
		}
		return r, nil
	}
	rewrite := func(refs []*dpb.Reference) ([]*dpb.Reference, error) {
		var out []*dpb.Reference
		for _, r := range refs {
			n, err := logical(r)
			if err != nil {
				return nil, err
			}
			if n != nil {
				out = append(out, n)
			}
		}
		return out, nil
	}
	var err error
	switch r := res.(type) {
	case *ispb.ImagingStudy:
		r.Id, r.Meta = nil, nil
		if len(r.Endpoint) > 0 {
			if st, gerr := f.store.Get(ctx, "Endpoint", EndpointID); gerr == nil {
				if cr, uerr := Unmarshal(st.JSON); uerr == nil {
					ep := cr.GetEndpoint()
					ep.Meta, ep.Id = nil, fid("wado")
					a, aerr := anypb.New(&bcrpb.ContainedResource{OneofResource: &bcrpb.ContainedResource_Endpoint{Endpoint: ep}})
					if aerr == nil {
						r.Contained = []*anypb.Any{a}
						r.Endpoint = []*dpb.Reference{{Reference: &dpb.Reference_Fragment{Fragment: &dpb.String{Value: "wado"}}}}
					}
				}
			}
			if len(r.Contained) == 0 {
				r.Endpoint = nil
			}
		}
		r.BasedOn, err = rewrite(r.BasedOn)
	case *drpb.DiagnosticReport:
		r.Id, r.Meta = nil, nil
		if r.BasedOn, err = rewrite(r.BasedOn); err == nil {
			r.ImagingStudy, err = rewrite(r.ImagingStudy)
		}
	case *srpb.ServiceRequest:
		r.Id, r.Meta = nil, nil
	}
	return err
}

// relativeRef turns a Location ("…/Patient/123/_history/1") into
// "Patient/123".
func relativeRef(loc, typ string) string {
	parts := strings.Split(strings.Trim(loc, "/"), "/")
	for i := len(parts) - 2; i >= 0; i-- {
		if parts[i] == typ {
			return typ + "/" + parts[i+1]
		}
	}
	return loc
}

// send makes one request to a target and classifies the answer: 2xx is
// done, 400/404/405/410/412/422 are refusals no retry changes
// (dead-lettered at once), anything else is retried.
func (f *FHIR) send(ctx context.Context, t *Target, method, u string, body proto.Message, ifNoneExist string) (string, error) {
	b, err := Marshal(body)
	if err != nil {
		return "", events.Permanent(err)
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.PushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(b))
	if err != nil {
		return "", events.Permanent(err)
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("Accept", "application/fhir+json")
	if ifNoneExist != "" {
		req.Header.Set("If-None-Exist", ifNoneExist)
	}
	auth, err := t.authorization(ctx, f.client)
	if err != nil {
		return "", err
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("fhir: %s %s: %w", method, t.Name, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		loc := resp.Header.Get("Location")
		if loc == "" {
			loc = resp.Header.Get("Content-Location")
		}
		if loc == "" {
			var v struct {
				ResourceType, ID string
			}
			if json.Unmarshal(rb, &v) == nil && v.ID != "" {
				loc = v.ResourceType + "/" + v.ID
			}
		}
		return loc, nil
	case resp.StatusCode == http.StatusUnauthorized:
		t.dropToken()
	case resp.StatusCode == 400, resp.StatusCode == 404, resp.StatusCode == 405, resp.StatusCode == 410, resp.StatusCode == 412, resp.StatusCode == 422:
		return "", events.Permanent(fmt.Errorf("%w: %s answered %s", errRejected, t.Name, resp.Status))
	}
	return "", fmt.Errorf("fhir: %s answered %s", t.Name, resp.Status)
}

// pushTransaction sends the patient (conditional create) and the resource
// (conditional update) as one transaction Bundle (R4 §3.1.0.11.2), the
// resource naming the patient by the entry's fullUrl.
func (f *FHIR) pushTransaction(ctx context.Context, t *Target, res proto.Message, patient *ppb.Patient, cond string) (string, error) {
	b := &bcrpb.Bundle{Type: &bcrpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_TRANSACTION}}
	if patient != nil {
		full := "urn:uuid:" + uuidFrom(patient.GetId().GetValue())
		b.Entry = append(b.Entry, &bcrpb.Bundle_Entry{
			FullUrl:  furi(full),
			Resource: contain(outgoingPatient(patient)),
			Request: &bcrpb.Bundle_Entry_Request{
				Method:      &bcrpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_POST},
				Url:         furi("Patient"),
				IfNoneExist: fstr(patientCondition(patient)),
			},
		})
		setSubject(res, ref(full))
	}
	b.Entry = append(b.Entry, &bcrpb.Bundle_Entry{
		FullUrl:  furi("urn:uuid:" + uuidFrom(cond)),
		Resource: contain(res),
		Request: &bcrpb.Bundle_Entry_Request{
			Method: &bcrpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_PUT},
			Url:    furi(cond),
		},
	})
	loc, err := f.send(ctx, t, http.MethodPost, t.URL, b, "")
	return loc, err
}

func contain(res proto.Message) *bcrpb.ContainedResource {
	cr := &bcrpb.ContainedResource{}
	rm := cr.ProtoReflect()
	od := rm.Descriptor().Oneofs().ByName("oneof_resource")
	for i := 0; i < od.Fields().Len(); i++ {
		fd := od.Fields().Get(i)
		if fd.Message().FullName() == res.ProtoReflect().Descriptor().FullName() {
			rm.Set(fd, protoValue(res))
			break
		}
	}
	return cr
}

// uuidFrom derives a stable RFC 4122 (version 5 layout) UUID from a key.
func uuidFrom(key string) string {
	h := sha256.Sum256([]byte(key))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
