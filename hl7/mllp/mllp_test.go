package mllp

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	type result struct {
		msg string
		err error
	}
	tests := []struct {
		name  string
		input string
		max   int
		want  []result
	}{
		{"one block", "\x0bMSH|a\r\x1c\r", 0, []result{{"MSH|a\r", nil}, {"", io.EOF}}},
		{"two blocks", "\x0bA\x1c\r\x0bB\x1c\r", 0, []result{{"A", nil}, {"B", nil}, {"", io.EOF}}},
		{"junk between blocks", "noise\r\n\x0bA\x1c\r\x00\xff\n\x0bB\x1c\r", 0, []result{{"A", nil}, {"B", nil}, {"", io.EOF}}},
		{"missing CR after EB", "\x0bA\x1c\x0bB\x1c", 0, []result{{"A", nil}, {"B", nil}, {"", io.EOF}}},
		{"abandoned block restarts", "\x0bpartial\x0bA\x1c\r", 0, []result{{"A", nil}, {"", io.EOF}}},
		{"empty block", "\x0b\x1c\r", 0, []result{{"", nil}, {"", io.EOF}}},
		{"eof inside block", "\x0bMSH|", 0, []result{{"", io.ErrUnexpectedEOF}}},
		{"empty stream", "", 0, []result{{"", io.EOF}}},
		{"only junk", "\r\n\r\n", 0, []result{{"", io.EOF}}},
		{"exactly max", "\x0b12345\x1c\r", 5, []result{{"12345", nil}}},
		{"over max", "\x0b123456\x1c\r", 5, []result{{"", ErrMessageTooLarge}}},
		{"junk over max", "0123456789\x0bA\x1c\r", 5, []result{{"", ErrMessageTooLarge}}},
	}
	for _, tt := range tests {
		for _, oneByte := range []bool{false, true} {
			name := tt.name
			var src io.Reader = bytes.NewReader([]byte(tt.input))
			if oneByte {
				name += "/one byte reads"
				src = iotest.OneByteReader(src)
			}
			t.Run(name, func(t *testing.T) {
				r := NewReader(src, tt.max)
				for i, w := range tt.want {
					got, err := r.ReadMessage()
					if !errors.Is(err, w.err) || (w.err == nil && err != nil) {
						t.Fatalf("read %d: err = %v, want %v", i, err, w.err)
					}
					if string(got) != w.msg {
						t.Fatalf("read %d: got %q, want %q", i, got, w.msg)
					}
				}
			})
		}
	}
}

// A message larger than the bufio buffer arrives in several ReadSlice
// chunks and must be reassembled intact.
func TestReaderLargeMessage(t *testing.T) {
	big := bytes.Repeat([]byte("OBX|1|ED|||"), 20000)
	var stream bytes.Buffer
	w := NewWriter(&stream)
	for range 3 {
		if err := w.WriteMessage(big); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&stream, len(big))
	for i := range 3 {
		got, err := r.ReadMessage()
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		if !bytes.Equal(got, big) {
			t.Fatalf("read %d: %d bytes differ from the %d written", i, len(got), len(big))
		}
	}
	r = NewReader(bytes.NewReader(Frame(big)), len(big)-1)
	if _, err := r.ReadMessage(); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("oversized: err = %v, want ErrMessageTooLarge", err)
	}
}

func TestWaitForBlock(t *testing.T) {
	r := NewReader(bytes.NewReader([]byte("\x0bA\x1c\r\n junk \x0bB\x1c\r\r\n")), 0)
	for _, want := range []string{"A", "B"} {
		if err := r.WaitForBlock(); err != nil {
			t.Fatal(err)
		}
		if err := r.WaitForBlock(); err != nil { // idempotent: <SB> stays unread
			t.Fatal(err)
		}
		got, err := r.ReadMessage()
		if err != nil || string(got) != want {
			t.Fatalf("ReadMessage = %q, %v; want %q", got, err, want)
		}
	}
	if err := r.WaitForBlock(); err != io.EOF {
		t.Fatalf("WaitForBlock at end = %v, want io.EOF", err)
	}
}

func TestWriter(t *testing.T) {
	tests := []struct {
		msg     string
		want    string
		wantErr error
	}{
		{"MSH|^~\\&|A\r", "\x0bMSH|^~\\&|A\r\x1c\r", nil},
		{"", "\x0b\x1c\r", nil},
		{"bad\x1cmsg", "", ErrInvalidMessage},
		{"bad\x0bmsg", "", ErrInvalidMessage},
	}
	for _, tt := range tests {
		var buf bytes.Buffer
		err := NewWriter(&buf).WriteMessage([]byte(tt.msg))
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("WriteMessage(%q) err = %v, want %v", tt.msg, err, tt.wantErr)
		}
		if buf.String() != tt.want {
			t.Errorf("WriteMessage(%q) wrote %q, want %q", tt.msg, buf.String(), tt.want)
		}
	}
}

// Over a real TCP connection: blocks written one way come out whole on the
// other side, whatever the segmenting.
func TestOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	msgs := []string{"MSH|^~\\&|A|B\rPID|1\r", "MSH|^~\\&|C|D\r", ""}
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		w := NewWriter(c)
		for _, m := range msgs {
			if err := w.WriteMessage([]byte(m)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := NewReader(c, 0)
	for _, want := range msgs {
		got, err := r.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	if _, err := r.ReadMessage(); err != io.EOF {
		t.Fatalf("after last block: err = %v, want io.EOF", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// FuzzReader checks the framer never panics, never returns more than the
// limit, and that whatever it returns survives a write/read round trip.
func FuzzReader(f *testing.F) {
	for _, s := range []string{
		"\x0bMSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\r\x1c\r",
		"\x0bA\x1c\r\x0bB\x1c\r",
		"junk\x0bA\x1c",
		"\x0b\x0b\x1c\x1c\r\r",
		"\x0bpartial",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 64
		r := NewReader(bytes.NewReader(data), max)
		for range 1000 {
			msg, err := r.ReadMessage()
			if err != nil {
				return
			}
			if len(msg) > max {
				t.Fatalf("message of %d bytes exceeds limit %d", len(msg), max)
			}
			var buf bytes.Buffer
			if err := NewWriter(&buf).WriteMessage(msg); err != nil {
				t.Fatalf("framed content contains a block character: %q", msg)
			}
			again, err := NewReader(&buf, max).ReadMessage()
			if err != nil || !bytes.Equal(again, msg) {
				t.Fatalf("round trip of %q gave %q, %v", msg, again, err)
			}
		}
	})
}
