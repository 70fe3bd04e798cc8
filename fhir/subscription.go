package fhir

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	subpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/subscription_go_proto"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
)

// errUnprocessable marks a valid resource the server will not accept
// (R4 §3.1.0.8: 422 Unprocessable Entity).
var errUnprocessable = errors.New("fhir: unprocessable")

// subscribable are the resource types Subscription criteria may name.
var subscribable = map[string]bool{"ImagingStudy": true, "DiagnosticReport": true, "ServiceRequest": true}

func sortStrings(s []string) { sort.Strings(s) }

// ParseCriteria parses Subscription.criteria ("ImagingStudy?status=available").
func ParseCriteria(criteria string) (Query, error) {
	typ, rawQuery, _ := strings.Cut(strings.TrimSpace(criteria), "?")
	if !subscribable[typ] {
		return Query{}, fmt.Errorf("%w: criteria must name ImagingStudy, DiagnosticReport or ServiceRequest, not %q", errUnprocessable, typ)
	}
	vals, err := url.ParseQuery(rawQuery)
	if err != nil {
		return Query{}, fmt.Errorf("%w: criteria: %v", errUnprocessable, err)
	}
	q, err := ParseQuery(typ, vals)
	if err != nil {
		return Query{}, fmt.Errorf("%w: criteria: %v", errUnprocessable, err)
	}
	return q, nil
}

// checkSubscription validates what the hub needs of a Subscription beyond
// the structural validation: a rest-hook channel to an http(s) endpoint,
// criteria it can evaluate, a payload it can send, headers that are
// headers.
func checkSubscription(s *subpb.Subscription) error {
	ch := s.GetChannel()
	if ch.GetType().GetValue() != cpb.SubscriptionChannelTypeCode_REST_HOOK {
		return fmt.Errorf("%w: only rest-hook channels are supported", errUnprocessable)
	}
	u, err := url.Parse(ch.GetEndpoint().GetValue())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%w: channel.endpoint must be an absolute http(s) URL", errUnprocessable)
	}
	switch p := ch.GetPayload().GetValue(); p {
	case "", "application/fhir+json", "application/json", "application/json+fhir":
	default:
		return fmt.Errorf("%w: channel.payload %q is not supported (use application/fhir+json or none)", errUnprocessable, p)
	}
	for _, h := range ch.GetHeader() {
		name, _, ok := strings.Cut(h.GetValue(), ":")
		if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(name, " \t\r\n") || strings.ContainsAny(h.GetValue(), "\r\n") {
			return fmt.Errorf("%w: channel.header %q is not \"Name: value\"", errUnprocessable, h.GetValue())
		}
	}
	_, topic, err := subscriptionCriteria(s)
	if err == nil && topic != "" {
		err = checkPayloadContent(s)
	}
	return err
}

func (f *FHIR) readSubscription(w http.ResponseWriter, r *http.Request) (*subpb.Subscription, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		f.fail(w, r, http.StatusRequestEntityTooLarge, cpb.IssueTypeCode_TOO_LONG, "body too large")
		return nil, false
	}
	cr, err := Unmarshal(body)
	if err != nil {
		f.failErr(w, r, err)
		return nil, false
	}
	s := cr.GetSubscription()
	if s == nil {
		f.fail(w, r, http.StatusBadRequest, cpb.IssueTypeCode_INVALID, "the body is not a Subscription")
		return nil, false
	}
	if err := checkSubscription(s); err != nil {
		f.failErr(w, r, err)
		return nil, false
	}
	// The hub accepts a classic subscription at once: it is active from
	// now on (R4 Subscription.status: the server sets active), unless the
	// client turns it off. A topic-based one stays requested until its
	// handshake got through (Backport IG, "Handshake").
	if s.GetStatus().GetValue() != cpb.SubscriptionStatusCode_OFF {
		s.Status = &subpb.Subscription_StatusCode{Value: cpb.SubscriptionStatusCode_ACTIVE}
		if _, topic, _ := subscriptionCriteria(s); topic != "" {
			s.Status = &subpb.Subscription_StatusCode{Value: cpb.SubscriptionStatusCode_REQUESTED}
		}
	}
	s.Error = nil
	return s, true
}

func (f *FHIR) createSubscription(w http.ResponseWriter, r *http.Request) {
	s, ok := f.readSubscription(w, r)
	if !ok {
		return
	}
	var b [12]byte
	rand.Read(b[:])
	s.Id = fid(hex.EncodeToString(b[:]))
	st, _, err := f.store.Put(r.Context(), s)
	if err == nil {
		err = f.queueHandshake(r.Context(), s, st)
	}
	if err != nil {
		f.failErr(w, r, err)
		return
	}
	f.writeStored(w, r, http.StatusCreated, st)
}

func (f *FHIR) updateSubscription(w http.ResponseWriter, r *http.Request) {
	s, ok := f.readSubscription(w, r)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if s.GetId().GetValue() != id {
		f.fail(w, r, http.StatusBadRequest, cpb.IssueTypeCode_INVALID, "the resource id must match the URL (R4 §3.1.0.4.3)")
		return
	}
	st, _, err := f.store.Put(r.Context(), s)
	if err == nil {
		err = f.queueHandshake(r.Context(), s, st)
	}
	if err != nil {
		f.failErr(w, r, err)
		return
	}
	status := http.StatusOK
	if st.VersionID == 1 {
		status = http.StatusCreated
	}
	f.writeStored(w, r, status, st)
}

func (f *FHIR) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	if err := f.store.Delete(r.Context(), "Subscription", r.PathValue("id")); err != nil {
		f.failErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// notifyJob is one notification to send.
type notifyJob struct {
	Subscription string `json:"subscription"`
	// Handshake marks the handshake of a topic-based subscription.
	Handshake bool   `json:"handshake,omitempty"`
	Type      string `json:"resourceType"`
	ID        string `json:"id"`
	VersionID int64  `json:"versionId"`
}

// queueNotifications queues a notification for every live subscription
// whose criteria the stored version meets.
func (f *FHIR) queueNotifications(ctx context.Context, st Stored) error {
	if !subscribable[st.Type] {
		return nil
	}
	q, err := ParseQuery("Subscription", url.Values{"status": {"active,error,requested"}, "_count": {strconv.Itoa(MaxCount)}})
	if err != nil {
		return err
	}
	subs, _, err := f.store.Search(ctx, q)
	if err != nil {
		return err
	}
	var jobs []notifyJob
	err = f.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		for _, ss := range subs {
			cr, err := Unmarshal(ss.JSON)
			if err != nil {
				continue
			}
			crit, _, err := subscriptionCriteria(cr.GetSubscription())
			if err != nil || crit.Type != st.Type {
				continue
			}
			ok, err := f.store.Matches(ctx, tx, crit, st.ID)
			if err != nil {
				return err
			}
			if ok {
				jobs = append(jobs, notifyJob{Subscription: ss.ID, Type: st.Type, ID: st.ID, VersionID: st.VersionID})
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, job := range jobs {
		b, _ := json.Marshal(job)
		msgID := events.ID("fhir.notify", job.Subscription, job.Type, job.ID, strconv.FormatInt(job.VersionID, 10))
		if _, err := f.rt.Bus.PublishRaw(ctx, notifySubjectRoot+"rest-hook", msgID, b, nil); err != nil {
			return fmt.Errorf("fhir: queue notification: %w", err)
		}
	}
	return nil
}

// notify sends one rest-hook notification (R4 Subscription, channel type
// rest-hook): without a payload, an empty POST to the endpoint; with
// one, the resource PUT to [endpoint]/[type]/[id]. Failures put the
// subscription in status error with the reason until a delivery succeeds.
func (f *FHIR) notify(ctx context.Context, d events.Delivery) error {
	var job notifyJob
	if err := json.Unmarshal(d.Data, &job); err != nil || job.Subscription == "" {
		return events.Permanent(fmt.Errorf("fhir: notification job: %v", err))
	}
	sst, err := f.store.Get(ctx, "Subscription", job.Subscription)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrGone) {
		return nil
	}
	if err != nil {
		return err
	}
	cr, err := Unmarshal(sst.JSON)
	if err != nil {
		return events.Permanent(err)
	}
	sub := cr.GetSubscription()
	if sub.GetStatus().GetValue() == cpb.SubscriptionStatusCode_OFF {
		return nil
	}
	if _, topic, err := subscriptionCriteria(sub); err == nil && topic != "" {
		var serr error
		if job.Handshake {
			serr = f.handshake(ctx, sub, topic)
		} else {
			serr = f.notifyTopic(ctx, sub, topic, job)
		}
		if serr != nil {
			f.log.WarnContext(ctx, "FHIR notification failed", "subscription", job.Subscription, "delivery", d.NumDelivered, "err", serr)
		}
		if err := f.setSubscriptionState(ctx, sub, serr); err != nil {
			return err
		}
		return serr
	}
	ch := sub.GetChannel()
	method, target := http.MethodPost, ch.GetEndpoint().GetValue()
	var body []byte
	if p := ch.GetPayload().GetValue(); p != "" {
		cur, err := f.store.Get(ctx, job.Type, job.ID)
		if err != nil {
			return err
		}
		method, body = http.MethodPut, cur.JSON
		target = strings.TrimRight(target, "/") + "/" + job.Type + "/" + job.ID
	}
	serr := f.deliver(ctx, method, target, body, ch.GetHeader())
	if serr != nil {
		f.log.WarnContext(ctx, "FHIR notification failed", "subscription", job.Subscription, "delivery", d.NumDelivered, "err", serr)
	}
	if err := f.setSubscriptionState(ctx, sub, serr); err != nil {
		return err
	}
	return serr
}

func (f *FHIR) deliver(ctx context.Context, method, target string, body []byte, headers []*dpb.String) error {
	return f.deliverType(ctx, method, target, body, ContentType, headers)
}

func (f *FHIR) deliverType(ctx context.Context, method, target string, body []byte, contentType string, headers []*dpb.String) error {
	ctx, cancel := context.WithTimeout(ctx, f.opts.PushTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return events.Permanent(err)
	}
	if body != nil {
		if contentType == "" {
			contentType = ContentType
		}
		req.Header.Set("Content-Type", contentType)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h.GetValue(), ":")
		req.Header.Add(textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(name)), strings.TrimSpace(value))
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("rest-hook: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return fmt.Errorf("rest-hook endpoint answered %s", resp.Status)
	}
	return nil
}

// setSubscriptionState records the outcome of a delivery on the
// subscription when it changes its status.
func (f *FHIR) setSubscriptionState(ctx context.Context, sub *subpb.Subscription, derr error) error {
	if derr == nil {
		f.metrics.notifications.WithLabelValues("delivered").Inc()
	} else {
		f.metrics.notifications.WithLabelValues("failed").Inc()
	}
	status := sub.GetStatus().GetValue()
	sub = proto.Clone(sub).(*subpb.Subscription)
	switch {
	case derr == nil && status != cpb.SubscriptionStatusCode_ACTIVE:
		sub.Status = &subpb.Subscription_StatusCode{Value: cpb.SubscriptionStatusCode_ACTIVE}
		sub.Error = nil
	case derr != nil && (status != cpb.SubscriptionStatusCode_ERROR || sub.GetError().GetValue() != derr.Error()):
		sub.Status = &subpb.Subscription_StatusCode{Value: cpb.SubscriptionStatusCode_ERROR}
		sub.Error = fstr(derr.Error())
	default:
		return nil
	}
	sub.Meta = nil
	_, _, err := f.store.Put(ctx, sub)
	return err
}
