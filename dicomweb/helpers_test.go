package dicomweb_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomfile/synth"
	"github.com/imaginghub/imaginghub/dicomweb"
	"github.com/imaginghub/imaginghub/hub"
	"github.com/imaginghub/imaginghub/hub/hubtest"
	"github.com/imaginghub/imaginghub/ingest"
)

// env is a running hub with ingest and DICOMweb.
type env struct {
	rt     *hub.Runtime
	in     *ingest.Ingest
	web    *dicomweb.Service
	base   string // http://host/dicomweb
	client *http.Client
}

func start(tb testing.TB, opts dicomweb.Options) *env {
	tb.Helper()
	e := &env{client: &http.Client{}}
	cfg := hubtest.Config(tb)
	e.rt = hubtest.Start(tb, cfg, func(rt *hub.Runtime) {
		in, err := ingest.New(rt)
		if err != nil {
			tb.Fatal(err)
		}
		web, err := dicomweb.New(rt, in.Storer, opts)
		if err != nil {
			tb.Fatal(err)
		}
		rt.Server.Add(in)
		rt.Server.Add(web)
		e.in, e.web = in, web
	})
	e.base = "http://" + e.rt.Server.HTTPAddr() + dicomweb.BasePath
	return e
}

// instance writes a synthetic instance and returns its Part 10 bytes.
func instance(tb testing.TB, o synth.Options) []byte {
	tb.Helper()
	var buf bytes.Buffer
	if _, err := synth.CT(&buf, o); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// store files a Part 10 file through the ingest Storer, as C-STORE does.
func (e *env) store(tb testing.TB, file []byte) {
	tb.Helper()
	br := bufio.NewReader(bytes.NewReader(file))
	meta, err := dicomfile.ReadFileMeta(br)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := e.in.Storer.Store(context.Background(), ingest.Request{
		SOPClassUID:       meta.MediaStorageSOPClassUID,
		SOPInstanceUID:    meta.MediaStorageSOPInstanceUID,
		TransferSyntaxUID: meta.TransferSyntaxUID,
		Data:              br,
	}); err != nil {
		tb.Fatalf("store: %v", err)
	}
}

func (e *env) get(tb testing.TB, path string, accept string) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodGet, e.base+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return e.do(tb, req)
}

func (e *env) do(tb testing.TB, req *http.Request) (*http.Response, []byte) {
	tb.Helper()
	resp, err := e.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp, body
}

// part is one part of a multipart/related body.
type part struct {
	header map[string][]string
	body   []byte
}

func readMultipart(tb testing.TB, resp *http.Response, body []byte) []part {
	tb.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/related" {
		tb.Fatalf("Content-Type %q is not multipart/related (%v)", resp.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	var parts []part
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			return parts
		}
		if err != nil {
			tb.Fatalf("multipart: %v", err)
		}
		b, err := io.ReadAll(p)
		if err != nil {
			tb.Fatal(err)
		}
		parts = append(parts, part{header: p.Header, body: b})
	}
}

// multipartBody builds a STOW-RS request body.
func multipartBody(tb testing.TB, parts ...[]byte) (string, []byte) {
	tb.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		w, err := mw.CreatePart(map[string][]string{"Content-Type": {"application/dicom"}})
		if err != nil {
			tb.Fatal(err)
		}
		w.Write(p)
	}
	mw.Close()
	return `multipart/related; type="application/dicom"; boundary=` + mw.Boundary(), buf.Bytes()
}

func (e *env) post(tb testing.TB, path, contentType string, body []byte) (*http.Response, []byte) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodPost, e.base+path, bytes.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/dicom+json")
	return e.do(tb, req)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
