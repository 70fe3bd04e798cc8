package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imaginghub/imaginghub/config"
	"github.com/imaginghub/imaginghub/router"
)

const routerUsage = `usage: imaginghub router [--url http://host:port] COMMAND
  destinations          list destinations: queue depth, in flight, failed, paused
  failed NAME           list NAME's dead-lettered deliveries
  retry NAME SEQ        queue dead letter SEQ of NAME again
  discard NAME SEQ      drop dead letter SEQ of NAME
  pause NAME            stop deliveries to NAME (jobs keep queueing)
  resume NAME           start deliveries to NAME again
The hub's admin API is reached at http.addr unless --url is given.`

// routerCmd is "imaginghub router …": the router's admin commands, over
// the admin REST API of a running hub.
func routerCmd(ctx context.Context, cfg config.Config, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("router", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "", "base URL of the hub's admin API (default: from http.addr)")
	fs.Usage = func() { fmt.Fprintln(stderr, routerUsage) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	args = fs.Args()
	if len(args) == 0 {
		fs.Usage()
		return errors.New("router: no command")
	}
	if *base == "" {
		*base = adminURL(cfg.HTTP.Addr)
	}
	c := &adminClient{base: strings.TrimRight(*base, "/"), http: &http.Client{Timeout: 30 * time.Second}}

	want := func(n int) error {
		if len(args) != n+1 {
			fs.Usage()
			return fmt.Errorf("router %s: want %d argument(s)", args[0], n)
		}
		return nil
	}
	dest := func() string { return "/api/router/destinations/" + url.PathEscape(args[1]) }
	seq := func() (string, error) {
		if _, err := strconv.ParseUint(args[2], 10, 64); err != nil {
			return "", fmt.Errorf("router %s: %q is not a sequence number", args[0], args[2])
		}
		return args[2], nil
	}
	switch args[0] {
	case "destinations":
		if err := want(0); err != nil {
			return err
		}
		var ds []router.DestinationStatus
		if err := c.do(ctx, http.MethodGet, "/api/router/destinations", &ds); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tKIND\tTARGET\tQUEUED\tIN FLIGHT\tFAILED\tPAUSED")
		for _, d := range ds {
			target := d.URL
			if d.Kind == "dicom" {
				target = d.AE + "@" + d.Addr
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%t\n", d.Name, d.Kind, target, d.QueueDepth, d.InFlight, d.Failed, d.Paused)
		}
		return tw.Flush()
	case "failed":
		if err := want(1); err != nil {
			return err
		}
		var fj []router.FailedJob
		if err := c.do(ctx, http.MethodGet, dest()+"/failed", &fj); err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tATTEMPTS\tWHAT\tERROR")
		for _, f := range fj {
			what := f.SOPInstanceUID
			if what == "" {
				what = f.EventType + " " + f.EventID
			}
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\n", f.Seq, f.Time.Format(time.RFC3339), f.Attempts, what, f.Error)
		}
		return tw.Flush()
	case "retry", "discard":
		if err := want(2); err != nil {
			return err
		}
		s, err := seq()
		if err != nil {
			return err
		}
		method, path, done := http.MethodPost, dest()+"/failed/"+s+"/retry", "queued again"
		if args[0] == "discard" {
			method, path, done = http.MethodDelete, dest()+"/failed/"+s, "discarded"
		}
		if err := c.do(ctx, method, path, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: dead letter %s %s\n", args[1], s, done)
		return nil
	case "pause", "resume":
		if err := want(1); err != nil {
			return err
		}
		if err := c.do(ctx, http.MethodPost, dest()+"/"+args[0], nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s %sd\n", args[1], args[0])
		return nil
	}
	fs.Usage()
	return fmt.Errorf("router: unknown command %q", args[0])
}

// adminURL turns http.addr into a URL to reach it locally: an empty or
// unspecified host means this machine.
func adminURL(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

type adminClient struct {
	base string
	http *http.Client
}

// do calls the admin API and decodes a JSON answer into out (when not
// nil); an error answer becomes an error with the API's message.
func (c *adminClient) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, nil)
	if err != nil {
		return err
	}
	rsp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("router: admin API: %w", err)
	}
	defer rsp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(rsp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("router: admin API: %w", err)
	}
	if rsp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", e.Error, rsp.StatusCode)
		}
		return fmt.Errorf("router: admin API %s %s: %s", method, path, rsp.Status)
	}
	if out != nil {
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("router: admin API answer: %w", err)
		}
	}
	return nil
}
