package hl7

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/imaginghub/imaginghub/hl7/mllp"
)

// ErrACKMismatch is returned by Client.Send when the reply's MSA-2 does not
// name the message sent (HL7 2.5.1 §2.9.2: MSA-2 echoes MSH-10). The reply
// is returned too.
var ErrACKMismatch = errors.New("hl7: reply does not acknowledge the message sent")

// DefaultSendTimeout bounds a Send whose context has no deadline.
const DefaultSendTimeout = 30 * time.Second

// Client sends messages to one MLLP peer over a persistent connection and
// waits for each reply. It is safe for concurrent use: sends are
// serialized on the connection, as MLLP allows one outstanding message.
// The zero value needs only Addr.
type Client struct {
	Addr           string        // host:port
	TLSConfig      *tls.Config   // when set, the connection is TLS
	Timeout        time.Duration // per Send when ctx has no deadline; DefaultSendTimeout if zero
	MaxMessageSize int           // largest reply accepted; mllp.DefaultMaxMessageSize if zero

	once sync.Once
	sem  chan struct{} // one token: holder owns the connection
	conn net.Conn
	r    *mllp.Reader
	w    *mllp.Writer
}

func (c *Client) lock(ctx context.Context) error {
	c.once.Do(func() { c.sem = make(chan struct{}, 1) })
	select {
	case c.sem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) unlock() { <-c.sem }

// Send sends msg and returns the parsed reply. The connection is dialled
// on first use and after any error. If a reused connection turns out to
// have been closed by the peer (idle timeout) before any reply arrived,
// the message is sent once more on a new connection; receivers must treat
// a repeated MSH-10 as a duplicate anyway (HL7 2.5.1 §2.10.1).
func (c *Client) Send(ctx context.Context, msg []byte) (*Message, error) {
	// Only MSH is needed (MSH-10, to match the reply); the rest of the
	// message is the caller's business.
	head := bytes.TrimLeft(msg, "\r\n \t")
	if i := bytes.IndexAny(head, "\r\n"); i >= 0 {
		head = head[:i]
	}
	req, err := Parse(head)
	if err != nil {
		return nil, fmt.Errorf("hl7: send: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, durationOr(c.Timeout, DefaultSendTimeout))
		defer cancel()
	}
	if err := c.lock(ctx); err != nil {
		return nil, fmt.Errorf("hl7: send: %w", err)
	}
	defer c.unlock()

	for attempt := 0; ; attempt++ {
		reused := c.conn != nil
		if !reused {
			if err := c.dial(ctx); err != nil {
				return nil, err
			}
		}
		raw, err := c.roundTrip(ctx, msg)
		if err != nil {
			c.closeConn()
			if reused && attempt == 0 && ctx.Err() == nil && peerClosed(err) {
				continue
			}
			return nil, fmt.Errorf("hl7: send to %s: %w", c.Addr, err)
		}
		ack, err := Parse(raw)
		if err != nil {
			c.closeConn()
			return nil, fmt.Errorf("hl7: reply from %s: %w", c.Addr, err)
		}
		if msaControlID(ack) != req.Header().MessageControlID {
			c.closeConn()
			return ack, ErrACKMismatch
		}
		return ack, nil
	}
}

// peerClosed reports errors that mean the peer had closed the connection.
func peerClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

func (c *Client) dial(ctx context.Context) error {
	var (
		nc  net.Conn
		err error
	)
	if c.TLSConfig != nil {
		d := tls.Dialer{Config: c.TLSConfig}
		nc, err = d.DialContext(ctx, "tcp", c.Addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", c.Addr)
	}
	if err != nil {
		return fmt.Errorf("hl7: dial %s: %w", c.Addr, err)
	}
	c.conn = nc
	c.r = mllp.NewReader(nc, c.MaxMessageSize)
	c.w = mllp.NewWriter(nc)
	return nil
}

func (c *Client) roundTrip(ctx context.Context, msg []byte) ([]byte, error) {
	dl, _ := ctx.Deadline()
	nc := c.conn
	_ = nc.SetDeadline(dl)
	// Cancelling ctx interrupts a blocked read or write. The function may
	// still run after Send gave up and closed the connection (c.conn is
	// nil then), so it holds its own reference.
	stop := context.AfterFunc(ctx, func() { _ = nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := c.w.WriteMessage(msg); err != nil {
		return nil, ctxError(ctx, dl, err)
	}
	raw, err := c.r.ReadMessage()
	if err != nil {
		return nil, ctxError(ctx, dl, err)
	}
	return raw, nil
}

// ctxError reports a connection timeout caused by ctx as ctx's error: the
// socket deadline equals ctx's and may fire a moment before ctx notices.
func ctxError(ctx context.Context, dl time.Time, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && !dl.IsZero() && !time.Now().Before(dl) {
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	return err
}

func (c *Client) closeConn() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// Close closes the connection, waiting for a Send in progress to finish.
// The Client may be used again afterwards; it will reconnect.
func (c *Client) Close() error {
	if err := c.lock(context.Background()); err != nil {
		return err
	}
	defer c.unlock()
	c.closeConn()
	return nil
}

// msaControlID returns MSA-2 of a reply, or "" without MSA.
func msaControlID(ack *Message) string {
	if msa := ack.Segment("MSA"); msa != nil {
		return msa.Field(2)
	}
	return ""
}
