package events

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// FuzzUnmarshal feeds Unmarshal arbitrary message payloads, as a consumer
// receives them from NATS: it must not panic, and an envelope it accepts
// must survive a JSON round trip unchanged.
func FuzzUnmarshal(f *testing.F) {
	e, err := New("/imaginghub/ingest", TypeInstanceStored, "1.2.826.0.1.3680043.8.498.1", map[string]any{"SOPInstanceUID": "1.2.3"}, "1.2.3")
	if err != nil {
		f.Fatal(err)
	}
	good, _ := json.Marshal(e)
	f.Add(good)
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"ih.a","time":"2024-01-02T03:04:05Z"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","source":"s","type":"other"}`))
	f.Add([]byte(`{"specversion":"0.3"`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"data":[1,2,3],"specversion":"1.0","id":"\u0000","source":"s","type":"ih."}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Unmarshal(b)
		if err != nil {
			return
		}
		if e.Validate() != nil {
			t.Fatalf("Unmarshal accepted an invalid envelope: %+v", e)
		}
		again, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		e2, err := Unmarshal(again)
		if err != nil {
			t.Fatalf("round trip rejected: %v", err)
		}
		if !e.Time.Equal(e2.Time) {
			t.Fatalf("time changed: %v -> %v", e.Time, e2.Time)
		}
		e.Time, e2.Time = time.Time{}, time.Time{}
		// encoding/json compacts RawMessage on output; compare compacted.
		var c1, c2 bytes.Buffer
		_ = json.Compact(&c1, e.Data)
		_ = json.Compact(&c2, e2.Data)
		e.Data, e2.Data = c1.Bytes(), c2.Bytes()
		if !reflect.DeepEqual(e, e2) {
			t.Fatalf("round trip changed the envelope:\n%+v\n%+v", e, e2)
		}
	})
}

// FuzzParseDeadLetter feeds the dead-letter reader arbitrary NATS header
// blocks and payloads, as stored in the dead-letter stream: an operator's
// listing must never panic on a malformed entry.
func FuzzParseDeadLetter(f *testing.F) {
	f.Add([]byte("NATS/1.0\r\nIh-Dlq-Consumer: billing\r\nIh-Dlq-Subject: ih.procedure.completed\r\nIh-Dlq-Stream-Seq: 7\r\nIh-Dlq-Deliveries: 5\r\nIh-Dlq-Time: 2024-05-06T07:08:09.123Z\r\n\r\n"), []byte(`{"id":"abc","type":"ih.procedure.completed"}`))
	f.Add([]byte("NATS/1.0\r\nIh-Dlq-Stream-Seq: -1\r\nIh-Dlq-Deliveries: x\r\nIh-Dlq-Time: yesterday\r\n\r\n"), []byte(`{"id":`))
	f.Add([]byte("NATS/1.0\r\n\r\n"), []byte{})
	f.Fuzz(func(t *testing.T, hdr, data []byte) {
		var h nats.Header
		if len(hdr) > 0 {
			var err error
			if h, err = nats.DecodeHeadersMsg(hdr); err != nil {
				return
			}
		}
		dl := parseDeadLetter(&jetstream.RawStreamMsg{Subject: "ihdlq.x", Sequence: 3, Header: h, Data: data})
		if dl.Sequence != 3 || !bytes.Equal(dl.Data, data) {
			t.Fatalf("parseDeadLetter lost the sequence or payload: %+v", dl)
		}
		if h != nil && dl.Consumer != h.Get(HeaderDLQConsumer) {
			t.Fatalf("consumer %q, header says %q", dl.Consumer, h.Get(HeaderDLQConsumer))
		}
	})
}
