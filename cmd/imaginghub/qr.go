package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/imaginghub/imaginghub/catalog"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/qr"
)

// keyFlags collects repeated -k Keyword[=value] flags.
type keyFlags map[string]string

func (k keyFlags) String() string { return fmt.Sprint(map[string]string(k)) }

func (k keyFlags) Set(s string) error {
	kw, v, _ := strings.Cut(s, "=")
	if kw == "" {
		return errors.New("want Keyword or Keyword=value")
	}
	k[kw] = v
	return nil
}

// qrCmd is the Query/Retrieve SCU for operators:
//
//	imaginghub dicom find [--patient-root] [--level STUDY] -k PatientName=DOE* -k StudyDate HOST:PORT
//	imaginghub dicom move --dest AE [--level STUDY] -k StudyInstanceUID=1.2.3 HOST:PORT
//
// find prints one line per match, keyword=value pairs in keyword order.
func qrCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const usage = "usage: imaginghub dicom find|move [--aet AE] [--aec AE] [--patient-root] [--level PATIENT|STUDY|SERIES|IMAGE] [--dest AE] -k Keyword[=value]... HOST:PORT"
	if len(args) == 0 || args[0] != "find" && args[0] != "move" {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("dicom "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	aet := fs.String("aet", "IMAGINGHUB", "our (calling) AE title")
	aec := fs.String("aec", "IMAGINGHUB", "the peer's (called) AE title")
	patientRoot := fs.Bool("patient-root", false, "use the Patient Root information model (default Study Root)")
	levelName := fs.String("level", "STUDY", "Query/Retrieve Level: PATIENT, STUDY, SERIES or IMAGE")
	dest := fs.String("dest", "", "move destination AE title (move)")
	keys := keyFlags{}
	fs.Var(keys, "k", "key `Keyword[=value]`, repeatable; no value asks for the attribute back")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New(usage)
	}
	var level catalog.Level
	for _, l := range []catalog.Level{catalog.PatientLevel, catalog.StudyLevel, catalog.SeriesLevel, catalog.InstanceLevel} {
		if strings.EqualFold(*levelName, l.String()) {
			level = l
		}
	}
	if level == 0 {
		return fmt.Errorf("unknown level %q (want PATIENT, STUDY, SERIES or IMAGE)", *levelName)
	}
	sopClass := qr.StudyRootFind
	switch {
	case args[0] == "find" && *patientRoot:
		sopClass = qr.PatientRootFind
	case args[0] == "move" && *patientRoot:
		sopClass = qr.PatientRootMove
	case args[0] == "move":
		sopClass = qr.StudyRootMove
	}
	if args[0] == "move" && *dest == "" {
		return errors.New("qr move needs --dest AE")
	}
	as, err := dicomnet.Dial(ctx, fs.Arg(0), dicomnet.DialOptions{CallingAETitle: *aet, CalledAETitle: *aec,
		PresentationContexts: []dicomnet.ProposedContext{{AbstractSyntax: sopClass,
			TransferSyntaxes: []string{dicomnet.ExplicitVRLittleEndian, dicomnet.ImplicitVRLittleEndian}}}})
	if err != nil {
		return err
	}
	defer as.Release(context.WithoutCancel(ctx))
	if args[0] == "move" {
		res, err := qr.Move(ctx, as, sopClass, *dest, level, keys, func(remaining, completed, failed, warning int) {
			fmt.Fprintf(stderr, "remaining %d, completed %d, failed %d, warning %d\n", remaining, completed, failed, warning)
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "C-MOVE to %s: status 0x%04X, completed %d, failed %d, warning %d\n", *dest, res.Status, res.Completed, res.Failed, res.Warning)
		for _, uid := range res.FailedSOPInstanceUIDs {
			fmt.Fprintf(stdout, "failed %s\n", uid)
		}
		if res.Status != dicomnet.StatusSuccess {
			return &dicomnet.StatusError{Status: res.Status, ErrorComment: res.ErrorComment}
		}
		return nil
	}
	n := 0
	status, err := qr.Find(ctx, as, sopClass, level, keys, func(m map[string]string) error {
		n++
		kws := make([]string, 0, len(m))
		for k := range m {
			kws = append(kws, k)
		}
		slices.Sort(kws)
		var b strings.Builder
		for i, k := range kws {
			if i > 0 {
				b.WriteByte(' ')
			}
			fmt.Fprintf(&b, "%s=%q", k, m[k])
		}
		fmt.Fprintln(stdout, b.String())
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "C-FIND: %d matches, status 0x%04X\n", n, status)
	return nil
}
