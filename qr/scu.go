package qr

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomnet"
)

// ErrUnknownKeyword: a key passed to Find or Move is not one the Q/R
// dictionary of this package knows.
var ErrUnknownKeyword = errors.New("qr: unknown keyword")

// Keywords lists the attribute keywords Find and Move accept as keys, and
// the SCP answers with values, sorted.
func Keywords() []string {
	var out []string
	for _, a := range dictionary {
		out = append(out, a.keyword)
	}
	slices.Sort(out)
	return out
}

var byKeyword = func() map[string]tag {
	m := make(map[string]tag, len(dictionary))
	for t, a := range dictionary {
		m[a.keyword] = t
	}
	return m
}()

// encodeKeys builds an identifier from keyword → value pairs and the
// level (an empty value is a return key, PS3.4 §C.2.2.1.2).
func encodeKeys(level catalog.Level, keys map[string]string, ts string) ([]byte, error) {
	enc := encoder{explicit: explicitVR(ts)}
	for kw, v := range keys {
		t, ok := byKeyword[kw]
		if !ok {
			return nil, fmt.Errorf("%w: %q", ErrUnknownKeyword, kw)
		}
		if dictionary[t].vr == "US" {
			if v != "" {
				return nil, fmt.Errorf("%w: %s cannot be matched", ErrUnknownKeyword, kw)
			}
			enc.elems = append(enc.elems, element{tag: t, vr: "US"})
			continue
		}
		enc.add(t, dictionary[t].vr, v)
	}
	enc.add(tagQueryRetrieveLevel, "CS", level.String())
	return enc.bytes(), nil
}

// decodeKeys turns a response identifier into keyword → value, for the
// keywords this package knows.
func decodeKeys(b []byte, ts string) (map[string]string, error) {
	elems, err := parseIdentifier(b, ts)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(elems))
	for _, e := range elems {
		a, ok := dictionary[e.tag]
		if !ok {
			continue
		}
		if a.vr == "US" && len(e.value) == 2 {
			out[a.keyword] = fmt.Sprint(uint16(e.value[0]) | uint16(e.value[1])<<8)
			continue
		}
		out[a.keyword] = e.str()
	}
	return out, nil
}

// Find performs C-FIND as SCU (PS3.4 §C.4.1) on as, with sopClass
// PatientRootFind or StudyRootFind, and calls match for each match with
// its values by keyword. It returns the final status; a failure status is
// also returned as a *dicomnet.StatusError. An error from match sends
// C-CANCEL and is returned once the SCP has answered.
func Find(ctx context.Context, as *dicomnet.Association, sopClass string, level catalog.Level, keys map[string]string, match func(map[string]string) error) (uint16, error) {
	pc, ok := as.PresentationContext(sopClass, "")
	if !ok {
		return 0, fmt.Errorf("qr: find: %w for %s", dicomnet.ErrNoPresentationContext, sopClass)
	}
	id, err := encodeKeys(level, keys, pc.TransferSyntax)
	if err != nil {
		return 0, err
	}
	rsps, err := as.Request(ctx, pc, &dicomnet.Command{CommandField: dicomnet.CFindRQ, AffectedSOPClassUID: sopClass,
		Priority: dicomnet.PriorityMedium}, bytes.NewReader(id))
	if err != nil {
		return 0, fmt.Errorf("qr: find: %w", err)
	}
	var stop error
	for {
		r, err := rsps.Next(ctx)
		if err != nil {
			return 0, fmt.Errorf("qr: find: %w", err)
		}
		if r.Final() {
			st := r.Command.Status
			if st != dicomnet.StatusSuccess && st != dicomnet.StatusCancel {
				return st, &dicomnet.StatusError{Status: st, ErrorComment: r.Command.ErrorComment}
			}
			return st, stop
		}
		if r.Data == nil || stop != nil {
			continue
		}
		b, err := io.ReadAll(r.Data)
		if err != nil {
			return 0, fmt.Errorf("qr: find: %w", err)
		}
		vals, err := decodeKeys(b, pc.TransferSyntax)
		if err == nil {
			err = match(vals)
		}
		if err != nil {
			stop = err
			if cerr := rsps.Cancel(); cerr != nil {
				return 0, fmt.Errorf("qr: find: cancel: %w", cerr)
			}
		}
	}
}

// MoveResult is the outcome of a C-MOVE.
type MoveResult struct {
	Status                     uint16
	Completed, Failed, Warning int
	FailedSOPInstanceUIDs      []string
	ErrorComment               string
}

// Move performs C-MOVE as SCU (PS3.4 §C.4.2) on as, with sopClass
// PatientRootMove or StudyRootMove, asking that the instances the keys
// select be sent to destination. progress, when not nil, is called with
// each Pending response's counters.
func Move(ctx context.Context, as *dicomnet.Association, sopClass, destination string, level catalog.Level, keys map[string]string, progress func(remaining, completed, failed, warning int)) (MoveResult, error) {
	pc, ok := as.PresentationContext(sopClass, "")
	if !ok {
		return MoveResult{}, fmt.Errorf("qr: move: %w for %s", dicomnet.ErrNoPresentationContext, sopClass)
	}
	id, err := encodeKeys(level, keys, pc.TransferSyntax)
	if err != nil {
		return MoveResult{}, err
	}
	rsps, err := as.Request(ctx, pc, &dicomnet.Command{CommandField: dicomnet.CMoveRQ, AffectedSOPClassUID: sopClass,
		MoveDestination: destination}, bytes.NewReader(id))
	if err != nil {
		return MoveResult{}, fmt.Errorf("qr: move: %w", err)
	}
	n := func(p *uint16) int {
		if p == nil {
			return 0
		}
		return int(*p)
	}
	for {
		r, err := rsps.Next(ctx)
		if err != nil {
			return MoveResult{}, fmt.Errorf("qr: move: %w", err)
		}
		c := r.Command
		if !r.Final() {
			if progress != nil {
				progress(n(c.NumberOfRemainingSuboperations), n(c.NumberOfCompletedSuboperations),
					n(c.NumberOfFailedSuboperations), n(c.NumberOfWarningSuboperations))
			}
			continue
		}
		res := MoveResult{Status: c.Status, Completed: n(c.NumberOfCompletedSuboperations),
			Failed: n(c.NumberOfFailedSuboperations), Warning: n(c.NumberOfWarningSuboperations), ErrorComment: c.ErrorComment}
		if r.Data != nil {
			b, _ := io.ReadAll(r.Data)
			if elems, err := parseIdentifier(b, pc.TransferSyntax); err == nil {
				for _, e := range elems {
					if e.tag == tagFailedSOPInstanceUIDs && e.str() != "" {
						res.FailedSOPInstanceUIDs = splitUIDs(e.str())
					}
				}
			}
		}
		return res, nil
	}
}

func splitUIDs(s string) []string {
	var out []string
	for _, u := range bytes.Split([]byte(s), []byte{'\\'}) {
		out = append(out, string(bytes.Trim(u, " \x00")))
	}
	return out
}
