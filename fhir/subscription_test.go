package fhir_test

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/internal/testenv"

	"github.com/imaginghub/imaginghub/fhir"
)

func postSubscription(t *testing.T, base, body string) (string, map[string]any) {
	t.Helper()
	rsp, err := http.Post(base+"/Subscription", "application/fhir+json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer rsp.Body.Close()
	b, _ := io.ReadAll(rsp.Body)
	if rsp.StatusCode != http.StatusCreated || rsp.Header.Get("Location") == "" {
		t.Fatalf("create subscription: %s: %s", rsp.Status, b)
	}
	cr, err := fhir.Unmarshal(b)
	if err != nil || cr.GetSubscription() == nil {
		t.Fatalf("created subscription: %v", err)
	}
	return cr.GetSubscription().GetId().GetValue(), nil
}

// R4 rest-hook subscriptions: an id-only notification with the custom
// header, a full-resource notification PUT to [endpoint]/[type]/[id],
// status error with the reason while the subscriber fails and active again
// after, and delete.
func TestSubscriptionsRestHook(t *testing.T) {
	testenv.DCMTK(t, "storescu")
	th := startHub(t, testConfig(t), fhir.Options{})
	idOnly, full := &hookRecorder{}, &hookRecorder{}
	hookA := httptest.NewServer(idOnly)
	defer hookA.Close()
	hookB := httptest.NewServer(full)
	defer hookB.Close()

	subA, _ := postSubscription(t, th.base, subscriptionJSON("", "ImagingStudy?status=available", hookA.URL+"/notify", "", []string{"Authorization: Bearer sub-token"}))
	subB, _ := postSubscription(t, th.base, subscriptionJSON("", "DiagnosticReport?status=final", hookB.URL+"/fhir", "application/fhir+json", nil))
	var got map[string]any
	if code, _ := get(t, th.base+"/Subscription/"+subA, &got); code != 200 || got["status"] != "active" {
		t.Fatalf("subscription A: %d %v", code, got["status"])
	}

	th.sendHL7(t, ormNW) // registered: does not match status=available
	th.store(t, 1, studyOptions(1, "1", 1))
	testenv.WaitFor(t, "id-only notification", 10*time.Second, func() bool { return idOnly.count() == 1 })
	idOnly.mu.Lock()
	c := idOnly.calls[0]
	auth := idOnly.auth[0]
	idOnly.mu.Unlock()
	if c.Method != http.MethodPost || c.Path != "/notify" || len(c.Raw) != 0 || auth != "Bearer sub-token" {
		t.Errorf("id-only notification: %s %s body %q auth %q", c.Method, c.Path, c.Raw, auth)
	}

	th.sendHL7(t, oruF)
	testenv.WaitFor(t, "full-resource notification", 10*time.Second, func() bool { return full.count() == 1 })
	full.mu.Lock()
	c = full.calls[0]
	full.mu.Unlock()
	cr, err := fhir.Unmarshal(c.Raw)
	if c.Method != http.MethodPut || !strings.HasPrefix(c.Path, "/fhir/DiagnosticReport/") || err != nil || cr.GetDiagnosticReport() == nil {
		t.Errorf("full notification: %s %s (%v)", c.Method, c.Path, err)
	}

	// The subscriber fails: the subscription shows it, and the
	// notification is retried until it gets through.
	idOnly.mu.Lock()
	idOnly.fail = true
	idOnly.mu.Unlock()
	th.store(t, 1, studyOptions(2, "2", 2))
	testenv.WaitFor(t, "subscription in error", 10*time.Second, func() bool {
		got = nil
		get(t, th.base+"/Subscription/"+subA, &got)
		return got["status"] == "error" && strings.Contains(got["error"].(string), "500")
	})
	idOnly.mu.Lock()
	idOnly.fail = false
	idOnly.mu.Unlock()
	testenv.WaitFor(t, "retried notification and active subscription", 10*time.Second, func() bool {
		got = nil
		get(t, th.base+"/Subscription/"+subA, &got)
		return idOnly.count() >= 2 && got["status"] == "active" && got["error"] == nil
	})

	// Turned off by PUT, then deleted.
	off := strings.Replace(subscriptionJSON(subB, "DiagnosticReport?status=final", hookB.URL+"/fhir", "application/fhir+json", nil), `"requested"`, `"off"`, 1)
	req, _ := http.NewRequest(http.MethodPut, th.base+"/Subscription/"+subB, strings.NewReader(off))
	rsp, err := http.DefaultClient.Do(req)
	if err != nil || rsp.StatusCode != http.StatusOK {
		t.Fatalf("PUT subscription: %v %v", err, rsp.Status)
	}
	req, _ = http.NewRequest(http.MethodDelete, th.base+"/Subscription/"+subB, nil)
	if rsp, err := http.DefaultClient.Do(req); err != nil || rsp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE subscription: %v %v", err, rsp.Status)
	}
	if code, _ := get(t, th.base+"/Subscription/"+subB, nil); code != http.StatusGone {
		t.Errorf("deleted subscription: %d, want 410", code)
	}
}

// A topic-based subscription (Subscriptions R5 Backport IG on R4): the
// ImagingStudy topic with a filter, full-resource content; notifications
// are history Bundles with a SubscriptionStatus and numbered events.
func TestSubscriptionTopicBackport(t *testing.T) {
	testenv.DCMTK(t, "storescu")
	th := startHub(t, testConfig(t), fhir.Options{})
	hook := &hookRecorder{}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	body := `{"resourceType": "Subscription",
	  "meta": {"profile": ["http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription"]},
	  "status": "requested", "reason": "imaging for the EMR",
	  "criteria": "` + fhir.TopicImagingStudy + `",
	  "_criteria": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria", "valueString": "ImagingStudy?status=available"}]},
	  "channel": {"type": "rest-hook", "endpoint": "` + srv.URL + `/topic", "payload": "application/fhir+json",
	    "_payload": {"extension": [{"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content", "valueCode": "full-resource"}]}}}`
	subID, _ := postSubscription(t, th.base, body)
	// The handshake comes first and makes the subscription active.
	testenv.WaitFor(t, "handshake and active subscription", 10*time.Second, func() bool {
		var got map[string]any
		get(t, th.base+"/Subscription/"+subID, &got)
		return hook.count() == 1 && got["status"] == "active"
	})
	hook.mu.Lock()
	hs := hook.calls[0]
	hook.mu.Unlock()
	if cr, err := fhir.Unmarshal(hs.Raw); err != nil || !strings.Contains(string(hs.Raw), `"valueCode":"handshake"`) || len(cr.GetBundle().GetEntry()) != 1 {
		t.Fatalf("handshake: %v %s", err, hs.Raw)
	}

	th.sendHL7(t, ormNW) // registered: filtered out
	th.store(t, 1, studyOptions(1, "1", 1))
	testenv.WaitFor(t, "first topic notification", 10*time.Second, func() bool { return hook.count() >= 2 })
	th.store(t, 1, studyOptions(2, "2", 2))
	testenv.WaitFor(t, "second topic notification", 10*time.Second, func() bool { return hook.count() >= 3 })
	hook.mu.Lock()
	calls := append([]received(nil), hook.calls[1:]...)
	hook.mu.Unlock()
	for i, c := range calls[:2] {
		cr, err := fhir.Unmarshal(c.Raw)
		if err != nil || cr.GetBundle() == nil {
			t.Fatalf("notification %d: not a valid Bundle: %v", i, err)
		}
		b := cr.GetBundle()
		if b.GetType().GetValue().String() != "HISTORY" || len(b.GetEntry()) != 2 {
			t.Fatalf("notification %d: type %v, %d entries", i, b.GetType().GetValue(), len(b.GetEntry()))
		}
		params := b.GetEntry()[0].GetResource().GetParameters()
		got := map[string]string{}
		for _, p := range params.GetParameter() {
			switch p.GetName().GetValue() {
			case "topic":
				got["topic"] = p.GetValue().GetCanonical().GetValue()
			case "subscription":
				got["subscription"] = p.GetValue().GetReference().GetUri().GetValue()
			case "events-since-subscription-start":
				got["events"] = p.GetValue().GetStringValue().GetValue()
			case "type":
				got["type"] = p.GetValue().GetCode().GetValue()
			}
		}
		want := map[string]string{"topic": fhir.TopicImagingStudy, "events": fmt.Sprint(i + 1), "type": "event-notification"}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("notification %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
		if !strings.HasSuffix(got["subscription"], "/Subscription/"+subID) {
			t.Errorf("notification %d: subscription %q", i, got["subscription"])
		}
		if is := b.GetEntry()[1].GetResource().GetImagingStudy(); is == nil || is.GetStatus().GetValue().String() != "AVAILABLE" {
			t.Errorf("notification %d: focus %v", i, b.GetEntry()[1].GetResource())
		}
	}
}

// A notification queued while the subscriber is down reaches it after the
// hub restarts.
func TestNotificationSurvivesRestart(t *testing.T) {
	testenv.DCMTK(t, "storescu")
	cfg := testConfig(t)
	opts := fhir.Options{NotifyAttempts: 1000, NotifyBackOff: []time.Duration{200 * time.Millisecond}}
	th := startHub(t, cfg, opts)
	hook := &hookRecorder{fail: true}
	srv := httptest.NewServer(hook)
	defer srv.Close()
	postSubscription(t, th.base, subscriptionJSON("", "ImagingStudy?status=available", srv.URL+"/notify", "", nil))
	th.store(t, 1, studyOptions(1, "1", 1))
	testenv.WaitFor(t, "the notification to fail", 10*time.Second, func() bool {
		var got map[string]any
		get(t, th.base+"/Subscription?status=error", &got)
		return len(entriesOrNone(got)) == 1
	})
	th.rt.Server.Shutdown(t.Context())
	th = startHub(t, cfg, opts)
	hook.mu.Lock()
	hook.fail = false
	hook.mu.Unlock()
	testenv.WaitFor(t, "the notification after the restart", 15*time.Second, func() bool { return hook.count() >= 1 })
}
