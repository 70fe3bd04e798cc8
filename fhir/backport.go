package fhir

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	cpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/codes_go_proto"
	dpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/datatypes_go_proto"
	bcrpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"
	parpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/parameters_go_proto"
	subpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/subscription_go_proto"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/events"
)

// Topic-based subscriptions on R4, as the Subscriptions R5 Backport IG
// (http://hl7.org/fhir/uv/subscriptions-backport, STU 1.1) profiles them:
// Subscription.criteria is the topic's canonical URL, the filters go in a
// backport-filter-criteria extension of criteria, the payload content
// (empty, id-only, full-resource) in a backport-payload-content extension
// of channel.payload, and each notification is a history Bundle whose
// first entry is a Parameters SubscriptionStatus.
const (
	// TopicImagingStudy is the topic of every ImagingStudy created or
	// changed; filters are ImagingStudy search parameters.
	TopicImagingStudy = "http://imaginghub/SubscriptionTopic/imagingstudy"

	backportBase          = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
	extFilterCriteria     = backportBase + "backport-filter-criteria"
	extPayloadContent     = backportBase + "backport-payload-content"
	profileBackportStatus = backportBase + "backport-subscription-status-r4"
	payloadEmpty          = "empty"
	payloadIDOnly         = "id-only"
	payloadFullResource   = "full-resource"
	notificationTypeEvent = "event-notification"
)

var topics = map[string]string{TopicImagingStudy: "ImagingStudy"}

// subscriptionCriteria returns the query whose matches a subscription is
// notified of, and its topic ("" for a classic R4 criteria string).
func subscriptionCriteria(s *subpb.Subscription) (Query, string, error) {
	crit := strings.TrimSpace(s.GetCriteria().GetValue())
	if !strings.Contains(crit, "://") {
		q, err := ParseCriteria(crit)
		return q, "", err
	}
	typ, ok := topics[crit]
	if !ok {
		return Query{}, "", fmt.Errorf("%w: unknown subscription topic %q (this hub offers %s)", errUnprocessable, crit, TopicImagingStudy)
	}
	var filters []string
	for _, ext := range s.GetCriteria().GetExtension() {
		if ext.GetUrl().GetValue() != extFilterCriteria {
			continue
		}
		f := ext.GetValue().GetStringValue().GetValue()
		rest, ok := strings.CutPrefix(f, typ+"?")
		if !ok {
			return Query{}, "", fmt.Errorf("%w: filter criteria %q must start with %s?", errUnprocessable, f, typ)
		}
		filters = append(filters, rest)
	}
	q, err := ParseCriteria(typ + "?" + strings.Join(filters, "&"))
	return q, crit, err
}

// payloadContent is the backport payload content of a topic-based
// subscription; id-only when the client named none.
func payloadContent(s *subpb.Subscription) string {
	for _, ext := range s.GetChannel().GetPayload().GetExtension() {
		if ext.GetUrl().GetValue() == extPayloadContent {
			return ext.GetValue().GetCode().GetValue()
		}
	}
	return payloadIDOnly
}

func checkPayloadContent(s *subpb.Subscription) error {
	switch c := payloadContent(s); c {
	case payloadEmpty, payloadIDOnly, payloadFullResource:
		return nil
	default:
		return fmt.Errorf("%w: payload content %q (want empty, id-only or full-resource)", errUnprocessable, c)
	}
}

// queueHandshake queues the handshake of a topic-based subscription just
// stored as requested.
func (f *FHIR) queueHandshake(ctx context.Context, s *subpb.Subscription, st Stored) error {
	if s.GetStatus().GetValue() != cpb.SubscriptionStatusCode_REQUESTED {
		return nil
	}
	b, _ := json.Marshal(notifyJob{Subscription: st.ID, Handshake: true, VersionID: st.VersionID})
	msgID := events.ID("fhir.handshake", st.ID, strconv.FormatInt(st.VersionID, 10))
	if _, err := f.rt.Bus.PublishRaw(ctx, notifySubjectRoot+"rest-hook", msgID, b, nil); err != nil {
		return fmt.Errorf("fhir: queue handshake: %w", err)
	}
	return nil
}

// handshake sends the handshake Bundle: a SubscriptionStatus of type
// handshake, no event. Its success makes the subscription active.
func (f *FHIR) handshake(ctx context.Context, sub *subpb.Subscription, topic string) error {
	var n int64
	err := f.rt.Catalog.InReadTx(ctx, func(tx *catalog.ReadTx) error {
		err := tx.QueryRowContext(ctx, `SELECT events FROM fhir_subscription_events WHERE subscription_id = ?`, sub.GetId().GetValue()).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	b := TopicNotification(f.publicBase(), sub, topic, "", "", n, time.Now(), payloadEmpty, nil)
	params := b.GetEntry()[0].GetResource().GetParameters()
	var kept []*parpb.Parameters_Parameter
	for _, p := range params.GetParameter() {
		switch p.GetName().GetValue() {
		case "notification-event":
			continue
		case "type":
			p = param("type", pCode("handshake"))
		case "status":
			p = param("status", pCode("requested"))
		}
		kept = append(kept, p)
	}
	params.Parameter = kept
	body, err := Marshal(b)
	if err != nil {
		return err
	}
	return f.deliverType(ctx, http.MethodPost, sub.GetChannel().GetEndpoint().GetValue(), body, sub.GetChannel().GetPayload().GetValue(), sub.GetChannel().GetHeader())
}

func (f *FHIR) publicBase() string {
	if b := strings.TrimRight(f.opts.BaseURL, "/"); b != "" {
		return b
	}
	return "http://" + f.rt.Server.HTTPAddr() + "/fhir"
}

// eventNumber gives a notification its event number, once: a retried
// notification keeps the number it got first.
func (f *FHIR) eventNumber(ctx context.Context, sub, jobKey string) (int64, error) {
	var n int64
	err := f.rt.Catalog.InTx(ctx, func(tx *catalog.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT event_number FROM fhir_notification_numbers WHERE subscription_id = ? AND job_key = ?`, sub, jobKey).Scan(&n)
		if err == nil || !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE fhir_subscription_events SET events = events + 1 WHERE subscription_id = ?`, sub)
		if err != nil {
			return err
		}
		if k, _ := res.RowsAffected(); k == 0 {
			if _, err := tx.ExecContext(ctx, `INSERT INTO fhir_subscription_events (subscription_id, events) VALUES (?, 1)`, sub); err != nil {
				return err
			}
		}
		if err := tx.QueryRowContext(ctx, `SELECT events FROM fhir_subscription_events WHERE subscription_id = ?`, sub).Scan(&n); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO fhir_notification_numbers (subscription_id, job_key, event_number) VALUES (?, ?, ?)`, sub, jobKey, n)
		return err
	})
	return n, err
}

func param(name string, v *parpb.Parameters_Parameter_ValueX) *parpb.Parameters_Parameter {
	return &parpb.Parameters_Parameter{Name: fstr(name), Value: v}
}

func pString(s string) *parpb.Parameters_Parameter_ValueX {
	return &parpb.Parameters_Parameter_ValueX{Choice: &parpb.Parameters_Parameter_ValueX_StringValue{StringValue: fstr(s)}}
}

func pCode(s string) *parpb.Parameters_Parameter_ValueX {
	return &parpb.Parameters_Parameter_ValueX{Choice: &parpb.Parameters_Parameter_ValueX_Code{Code: fcode(s)}}
}

// TopicNotification builds the notification Bundle (type history) of one
// event of a topic-based subscription: the SubscriptionStatus Parameters,
// then the focus resource as the payload content asks. focus is the
// resource JSON for full-resource.
func TopicNotification(base string, sub *subpb.Subscription, topic, focusType, focusID string, eventNumber int64, at time.Time, content string, focus *bcrpb.ContainedResource) *bcrpb.Bundle {
	subRef := "Subscription/" + sub.GetId().GetValue()
	event := &parpb.Parameters_Parameter{Name: fstr("notification-event"), Part: []*parpb.Parameters_Parameter{
		param("event-number", pString(strconv.FormatInt(eventNumber, 10))),
		param("timestamp", &parpb.Parameters_Parameter_ValueX{Choice: &parpb.Parameters_Parameter_ValueX_Instant{Instant: instant(at)}}),
	}}
	if content != payloadEmpty {
		event.Part = append(event.Part, param("focus", &parpb.Parameters_Parameter_ValueX{Choice: &parpb.Parameters_Parameter_ValueX_Reference{Reference: ref(base + "/" + focusType + "/" + focusID)}}))
	}
	status := sub.GetStatus().GetValue()
	statusCode := "active"
	if status == cpb.SubscriptionStatusCode_ERROR {
		statusCode = "error"
	}
	params := &parpb.Parameters{
		Meta: &dpb.Meta{Profile: []*dpb.Canonical{{Value: profileBackportStatus}}},
		Parameter: []*parpb.Parameters_Parameter{
			param("subscription", &parpb.Parameters_Parameter_ValueX{Choice: &parpb.Parameters_Parameter_ValueX_Reference{Reference: ref(base + "/" + subRef)}}),
			param("topic", &parpb.Parameters_Parameter_ValueX{Choice: &parpb.Parameters_Parameter_ValueX_Canonical{Canonical: &dpb.Canonical{Value: topic}}}),
			param("status", pCode(statusCode)),
			param("type", pCode(notificationTypeEvent)),
			param("events-since-subscription-start", pString(strconv.FormatInt(eventNumber, 10))),
			event,
		},
	}
	b := &bcrpb.Bundle{
		Type:      &bcrpb.Bundle_TypeCode{Value: cpb.BundleTypeCode_HISTORY},
		Timestamp: instant(at),
		Entry: []*bcrpb.Bundle_Entry{{
			FullUrl:  furi("urn:uuid:" + uuidFrom(subRef+"/"+strconv.FormatInt(eventNumber, 10))),
			Resource: &bcrpb.ContainedResource{OneofResource: &bcrpb.ContainedResource_Parameters{Parameters: params}},
			Request: &bcrpb.Bundle_Entry_Request{
				Method: &bcrpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_GET},
				Url:    furi(subRef + "/$status"),
			},
			Response: &bcrpb.Bundle_Entry_Response{Status: fstr("200")},
		}},
	}
	if content != payloadEmpty {
		e := &bcrpb.Bundle_Entry{
			FullUrl: furi(base + "/" + focusType + "/" + focusID),
			Request: &bcrpb.Bundle_Entry_Request{
				Method: &bcrpb.Bundle_Entry_Request_MethodCode{Value: cpb.HTTPVerbCode_PUT},
				Url:    furi(focusType + "/" + focusID),
			},
			Response: &bcrpb.Bundle_Entry_Response{Status: fstr("200")},
		}
		if content == payloadFullResource {
			e.Resource = focus
		}
		b.Entry = append(b.Entry, e)
	}
	return b
}

// notifyTopic sends one notification of a topic-based subscription: the
// Bundle POSTed to the endpoint in the channel's payload type.
func (f *FHIR) notifyTopic(ctx context.Context, sub *subpb.Subscription, topic string, job notifyJob) error {
	content := payloadContent(sub)
	n, err := f.eventNumber(ctx, job.Subscription, job.Type+"/"+job.ID+"/"+strconv.FormatInt(job.VersionID, 10))
	if err != nil {
		return err
	}
	var focus *bcrpb.ContainedResource
	if content == payloadFullResource {
		cur, err := f.store.Get(ctx, job.Type, job.ID)
		if err != nil {
			return err
		}
		if focus, err = Unmarshal(cur.JSON); err != nil {
			return err
		}
	}
	b, err := Marshal(TopicNotification(f.publicBase(), sub, topic, job.Type, job.ID, n, time.Now(), content, focus))
	if err != nil {
		return err
	}
	return f.deliverType(ctx, http.MethodPost, sub.GetChannel().GetEndpoint().GetValue(), b, sub.GetChannel().GetPayload().GetValue(), sub.GetChannel().GetHeader())
}
