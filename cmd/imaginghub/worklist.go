package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/imaginghub/imaginghub/dicomfile"
	"github.com/imaginghub/imaginghub/dicomjson"
	"github.com/imaginghub/imaginghub/dicomnet"
	"github.com/imaginghub/imaginghub/worklist"
)

// worklistCmd is the Modality Worklist and MPPS SCU for operators, to see
// what a scanner sees and to report a procedure as a scanner would:
//
//	imaginghub dicom worklist [flags] HOST:PORT
//	imaginghub dicom mpps create [flags] HOST:PORT
//	imaginghub dicom mpps set [flags] HOST:PORT
//
// args[0] is "worklist" or "mpps".
func worklistCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: imaginghub dicom worklist|mpps …")
	}
	switch args[0] {
	case "worklist":
		return mwlFind(ctx, args[1:], stdout, stderr)
	case "mpps":
		if len(args) < 2 || args[1] != "create" && args[1] != "set" {
			return errors.New("usage: imaginghub dicom mpps create|set [flags] HOST:PORT")
		}
		return mppsCmd(ctx, args[1], args[2:], stdout, stderr)
	}
	return fmt.Errorf("unknown dicom command %q (want worklist or mpps)", args[0])
}

func dialWorklist(ctx context.Context, addr, aet, aec string) (*dicomnet.Association, error) {
	return dicomnet.Dial(ctx, addr, dicomnet.DialOptions{CallingAETitle: aet, CalledAETitle: aec, PresentationContexts: worklist.ProposedContexts()})
}

func today(s string) string {
	if s == "today" {
		return time.Now().Format("20060102")
	}
	return strings.ReplaceAll(s, "today", time.Now().Format("20060102"))
}

func mwlFind(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dicom worklist", flag.ContinueOnError)
	fs.SetOutput(stderr)
	aet := fs.String("aet", "IMAGINGHUB", "our (calling) AE title, usually the scanner's")
	aec := fs.String("aec", "IMAGINGHUB", "the peer's (called) AE title")
	var q worklist.Query
	fs.StringVar(&q.ScheduledStationAETitle, "station", "", "Scheduled Station AE Title")
	fs.StringVar(&q.Modality, "modality", "", "Modality")
	date := fs.String("date", "", `Scheduled Procedure Step Start Date: YYYYMMDD, a range "A-B", or "today"`)
	fs.StringVar(&q.ScheduledProcedureStepStartTime, "time", "", `Scheduled Procedure Step Start Time: HHMMSS or a range "A-B"`)
	fs.StringVar(&q.PatientName, "name", "", "Patient's Name, wildcards * and ? allowed")
	fs.StringVar(&q.PatientID, "patient-id", "", "Patient ID")
	fs.StringVar(&q.AccessionNumber, "accession", "", "Accession Number")
	fs.StringVar(&q.RequestedProcedureID, "requested-procedure-id", "", "Requested Procedure ID")
	fs.StringVar(&q.ScheduledProcedureStepStatus, "status", "", "Scheduled Procedure Step Status")
	asJSON := fs.Bool("json", false, "print the responses as DICOM JSON (PS3.18 Annex F)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: imaginghub dicom worklist [--station AE] [--date today] [--modality CT] [--name 'DOE^*'] [--accession A] … HOST:PORT")
	}
	q.ScheduledProcedureStepStartDate = today(*date)
	as, err := dialWorklist(ctx, fs.Arg(0), *aet, *aec)
	if err != nil {
		return err
	}
	defer as.Release(ctx)
	began := time.Now()
	sets, err := worklist.Find(ctx, as, q.DataSet())
	if err != nil {
		return fmt.Errorf("MWL C-FIND: %w", err)
	}
	if *asJSON {
		b := dicomjson.AppendArray(nil, sets)
		_, err := stdout.Write(append(b, '\n'))
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "DATE\tTIME\tSTATION\tMODALITY\tACCESSION\tSPS ID\tSTATUS\tPATIENT ID\tPATIENT NAME\tSTUDY INSTANCE UID")
	for _, ds := range sets {
		var sps dicomjson.DataSet = dicomjson.DataSet{}
		if a := ds[dicomfile.NewTag(0x0040, 0x0100)]; a != nil && len(a.Items) > 0 {
			sps = a.Items[0]
		}
		s := func(d dicomjson.DataSet, g, e uint16) string { return d.String(dicomfile.NewTag(g, e)) }
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s(sps, 0x0040, 0x0002), s(sps, 0x0040, 0x0003), s(sps, 0x0040, 0x0001),
			s(sps, 0x0008, 0x0060), s(ds, 0x0008, 0x0050), s(sps, 0x0040, 0x0009), s(sps, 0x0040, 0x0020), s(ds, 0x0010, 0x0020),
			s(ds, 0x0010, 0x0010), s(ds, 0x0020, 0x000D))
	}
	tw.Flush()
	fmt.Fprintf(stderr, "%d worklist items in %v\n", len(sets), time.Since(began).Round(time.Microsecond))
	return nil
}

func mppsCmd(ctx context.Context, op string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dicom mpps "+op, flag.ContinueOnError)
	fs.SetOutput(stderr)
	aet := fs.String("aet", "IMAGINGHUB", "our (calling) AE title, usually the scanner's")
	aec := fs.String("aec", "IMAGINGHUB", "the peer's (called) AE title")
	uid := fs.String("uid", "", "SOP Instance UID of the MPPS (create: assigned when empty; set: required)")
	var accession, station, ppsID, status, series string
	if op == "create" {
		fs.StringVar(&accession, "accession", "", "Accession Number of the worklist item performed (its attributes are copied from an MWL query); empty: unscheduled")
		fs.StringVar(&station, "station", "", "Performed Station AE Title (default: --aet)")
		fs.StringVar(&ppsID, "pps-id", "", "Performed Procedure Step ID (default: generated)")
	} else {
		fs.StringVar(&status, "status", worklist.PPSCompleted, "COMPLETED or DISCONTINUED")
		fs.StringVar(&series, "series", "", "comma-separated Series Instance UIDs performed")
	}
	asJSON := fs.Bool("json", false, "print the event-style summary as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: imaginghub dicom mpps %s [flags] HOST:PORT", op)
	}
	as, err := dialWorklist(ctx, fs.Arg(0), *aet, *aec)
	if err != nil {
		return err
	}
	defer as.Release(ctx)
	now := time.Now()
	if op == "set" {
		if *uid == "" {
			return errors.New("mpps set needs --uid")
		}
		var uids []string
		for _, u := range strings.Split(series, ",") {
			if u = strings.TrimSpace(u); u != "" {
				uids = append(uids, u)
			}
		}
		if err := worklist.SetMPPS(ctx, as, *uid, worklist.MPPSFinal(strings.ToUpper(status), now.Format("20060102"), now.Format("150405"), uids...)); err != nil {
			return fmt.Errorf("MPPS N-SET: %w", err)
		}
		fmt.Fprintf(stdout, "MPPS %s set to %s\n", *uid, strings.ToUpper(status))
		return nil
	}
	item := dicomjson.DataSet{}
	if accession != "" {
		sets, err := worklist.Find(ctx, as, worklist.Query{AccessionNumber: accession}.DataSet())
		if err != nil {
			return fmt.Errorf("MWL C-FIND: %w", err)
		}
		if len(sets) == 0 {
			return fmt.Errorf("no worklist item with accession number %q", accession)
		}
		item = sets[0]
	}
	if station == "" {
		station = *aet
	}
	if ppsID == "" {
		ppsID = now.Format("150405")
	}
	ds := worklist.MPPSInProgress(item, station, ppsID, now.Format("20060102"), now.Format("150405"))
	got, err := worklist.CreateMPPS(ctx, as, *uid, ds)
	if err != nil {
		return fmt.Errorf("MPPS N-CREATE: %w", err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]string{"sopInstanceUID": got, "status": worklist.PPSInProgress})
	}
	fmt.Fprintf(stdout, "MPPS %s created IN PROGRESS\n", got)
	return nil
}
