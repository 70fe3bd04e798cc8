package router

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/imaginghub/imaginghub/events"
)

// ContentType is the CloudEvents HTTP structured-mode media type
// (CloudEvents HTTP Protocol Binding 1.0 §3.2).
const ContentType = "application/cloudevents+json; charset=utf-8"

// ErrWebhookStatus: the webhook answered with a status other than 2xx.
var ErrWebhookStatus = errors.New("router: webhook did not accept the event")

// Sign returns the signature header value of body under secret:
// "sha256=" and the hex HMAC-SHA256 (RFC 2104) of the body as sent.
// Receivers recompute it over the raw body and compare in constant time.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether signature (a HeaderSignature value) is body's
// under secret, in constant time.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// post delivers one event to a webhook in structured mode: the body is the
// CloudEvent's JSON exactly as published. 2xx completes the delivery;
// 408, 429 and 5xx are retried; any other status is permanent (the
// receiver rejects this event and will go on doing so).
func (d *destination) post(ctx context.Context, j *Job) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.cfg.URL, bytes.NewReader(j.Event))
	if err != nil {
		return events.Permanent(fmt.Errorf("router: webhook request: %w", err))
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("User-Agent", "imaginghub-router")
	if d.cfg.Secret != "" {
		req.Header.Set(HeaderSignature, Sign(d.cfg.Secret, j.Event))
	}
	rsp, err := d.r.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("router: webhook %s: %w", d.cfg.Name, err)
	}
	io.Copy(io.Discard, io.LimitReader(rsp.Body, 64<<10))
	rsp.Body.Close()
	switch c := rsp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout, c == http.StatusTooManyRequests, c >= 500:
		return fmt.Errorf("%w: %s answered %s", ErrWebhookStatus, d.cfg.Name, rsp.Status)
	default:
		return events.Permanent(fmt.Errorf("%w: %s answered %s", ErrWebhookStatus, d.cfg.Name, rsp.Status))
	}
}
