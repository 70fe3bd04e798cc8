package router

import (
	"fmt"
	"regexp"
	"slices"
	"time"

	"github.com/imaginghub/imaginghub/config"
)

// Attributes are what a rule can match on, taken from an event (and, for
// study-level events, from the catalog).
type Attributes struct {
	// Type is the CloudEvents type ("ih.dicom.instance.stored").
	Type string
	// Time is when the fact happened; its local time of day is matched by
	// time_of_day, so that a router catching up after an outage routes as
	// it would have on time. Zero means now.
	Time             time.Time
	CallingAE        []string
	Modality         []string // one per instance; ModalitiesInStudy (0008,0061) for a study
	SOPClassUID      []string
	BodyPartExamined []string
	StudyDescription []string
	InstitutionName  []string
}

// Rule is a compiled config.Rule.
type Rule struct {
	Name    string
	On      []string
	Forward []string

	regexps  map[string]*regexp.Regexp
	timeFrom int // minutes after midnight; -1: any time
	timeTo   int
}

// CompileRules compiles the configured rules. The configuration has been
// validated, but compiling again keeps a Router built by hand honest.
func CompileRules(rules []config.Rule) ([]Rule, error) {
	out := make([]Rule, 0, len(rules))
	for i, r := range rules {
		label := r.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		res, err := r.Match.Regexps()
		if err != nil {
			return nil, fmt.Errorf("%w: rule %s: %v", ErrConfig, label, err)
		}
		c := Rule{Name: label, On: r.On, Forward: r.Forward, regexps: res, timeFrom: -1}
		if r.Match.TimeOfDay != "" {
			if c.timeFrom, c.timeTo, err = config.ParseTimeOfDay(r.Match.TimeOfDay); err != nil {
				return nil, fmt.Errorf("%w: rule %s: %v", ErrConfig, label, err)
			}
		}
		out = append(out, c)
	}
	return out, nil
}

// Matches reports whether the rule applies to an event with attributes a.
// An attribute given as several values (the modalities of a study) matches
// when any value does; an absent attribute is matched as "".
func (r *Rule) Matches(a Attributes) bool {
	if !slices.Contains(r.On, a.Type) {
		return false
	}
	for name, re := range r.regexps {
		var vals []string
		switch name {
		case "calling_ae":
			vals = a.CallingAE
		case "modality":
			vals = a.Modality
		case "sop_class_uid":
			vals = a.SOPClassUID
		case "body_part_examined":
			vals = a.BodyPartExamined
		case "study_description":
			vals = a.StudyDescription
		case "institution_name":
			vals = a.InstitutionName
		}
		if len(vals) == 0 {
			vals = []string{""}
		}
		if !slices.ContainsFunc(vals, re.MatchString) {
			return false
		}
	}
	if r.timeFrom >= 0 {
		t := a.Time
		if t.IsZero() {
			t = time.Now()
		}
		t = t.Local()
		if !inTimeOfDay(t.Hour()*60+t.Minute(), r.timeFrom, r.timeTo) {
			return false
		}
	}
	return true
}

// inTimeOfDay reports whether minute m lies in [from, to); a range whose
// end is before its start wraps midnight ("22:00-06:00"), and from == to
// means the whole day.
func inTimeOfDay(m, from, to int) bool {
	switch {
	case from == to:
		return true
	case from < to:
		return m >= from && m < to
	default:
		return m >= from || m < to
	}
}

// Destinations returns the destinations the rules send an event with
// attributes a to, each once, in the order rules name them.
func Destinations(rules []Rule, a Attributes) []string {
	var out []string
	for i := range rules {
		if !rules[i].Matches(a) {
			continue
		}
		for _, d := range rules[i].Forward {
			if !slices.Contains(out, d) {
				out = append(out, d)
			}
		}
	}
	return out
}
