package config

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Router is rule-based forwarding: rules match events and send them to
// destinations. Rules and destinations are structured, so they are set in
// the YAML file only.
type Router struct {
	Destinations []Destination `yaml:"destinations" env:"-"`
	Rules        []Rule        `yaml:"rules" env:"-"`
}

// Destination is where a rule forwards: a DICOM peer (AE and Addr) or an
// HTTP webhook (URL).
type Destination struct {
	Name string `yaml:"name"`
	// DICOM C-STORE destination.
	AE        string `yaml:"ae,omitempty"`
	Addr      string `yaml:"addr,omitempty"`
	CallingAE string `yaml:"calling_ae,omitempty"` // default dicom.ae
	// Webhook destination: the CloudEvent is POSTed as JSON. With Secret,
	// an HMAC-SHA256 of the body is sent in a signature header.
	URL    string `yaml:"url,omitempty"`
	Secret string `yaml:"secret,omitempty"`
	// Concurrency is how many deliveries run at once (associations or
	// requests); default 1.
	Concurrency int `yaml:"concurrency,omitempty"`
	// MaxAttempts before a delivery is dead-lettered; default 10.
	MaxAttempts int `yaml:"max_attempts,omitempty"`
	// Timeout of one delivery attempt; default 60s.
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// Rule matches events and forwards them.
type Rule struct {
	Name string `yaml:"name"`
	// On lists event types: "ih.dicom.instance.stored",
	// "ih.dicom.study.stable", "ih.study.reconciled", …
	On []string `yaml:"on"`
	// Match holds regular expressions (RE2, anchored by the author) on the
	// event's attributes; every one given must match.
	Match RuleMatch `yaml:"match,omitempty"`
	// Forward names destinations.
	Forward []string `yaml:"forward"`
}

// RuleMatch are a rule's conditions. Empty ones match everything.
type RuleMatch struct {
	CallingAE        string `yaml:"calling_ae,omitempty"`
	Modality         string `yaml:"modality,omitempty"`
	SOPClassUID      string `yaml:"sop_class_uid,omitempty"`
	BodyPartExamined string `yaml:"body_part_examined,omitempty"`
	StudyDescription string `yaml:"study_description,omitempty"`
	InstitutionName  string `yaml:"institution_name,omitempty"`
	// TimeOfDay is "HH:MM-HH:MM" in the hub's local time; a range that
	// wraps midnight ("22:00-06:00") is allowed.
	TimeOfDay string `yaml:"time_of_day,omitempty"`
}

// Regexps returns the rule's attribute conditions by name, compiled.
func (m RuleMatch) Regexps() (map[string]*regexp.Regexp, error) {
	out := map[string]*regexp.Regexp{}
	for name, expr := range map[string]string{
		"calling_ae": m.CallingAE, "modality": m.Modality, "sop_class_uid": m.SOPClassUID,
		"body_part_examined": m.BodyPartExamined, "study_description": m.StudyDescription,
		"institution_name": m.InstitutionName,
	} {
		if expr == "" {
			continue
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", name, err)
		}
		out[name] = re
	}
	return out, nil
}

// ParseTimeOfDay reads "HH:MM-HH:MM" into minutes after midnight.
func ParseTimeOfDay(s string) (from, to int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		return 0, 0, fmt.Errorf("time_of_day %q: want HH:MM-HH:MM", s)
	}
	parse := func(v string) (int, error) {
		t, err := time.Parse("15:04", strings.TrimSpace(v))
		if err != nil {
			return 0, fmt.Errorf("time_of_day %q: want HH:MM-HH:MM", s)
		}
		return t.Hour()*60 + t.Minute(), nil
	}
	if from, err = parse(a); err != nil {
		return
	}
	to, err = parse(b)
	return
}

func (r Router) validate() error {
	names := map[string]bool{}
	for i, d := range r.Destinations {
		switch {
		case d.Name == "":
			return fmt.Errorf("destination %d has no name", i+1)
		case names[d.Name]:
			return fmt.Errorf("destination %q defined twice", d.Name)
		case (d.URL == "") == (d.Addr == ""):
			return fmt.Errorf("destination %q: set either url (webhook) or ae and addr (DICOM)", d.Name)
		case d.Addr != "":
			if err := checkAE(d.AE); err != nil {
				return fmt.Errorf("destination %q: ae: %v", d.Name, err)
			}
			if _, _, err := net.SplitHostPort(d.Addr); err != nil {
				return fmt.Errorf("destination %q: addr %q is not host:port", d.Name, d.Addr)
			}
			if d.CallingAE != "" {
				if err := checkAE(d.CallingAE); err != nil {
					return fmt.Errorf("destination %q: calling_ae: %v", d.Name, err)
				}
			}
		default:
			u, err := url.Parse(d.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("destination %q: url must be http:// or https://", d.Name)
			}
		}
		if d.Concurrency < 0 || d.MaxAttempts < 0 || d.Timeout < 0 {
			return fmt.Errorf("destination %q: negative concurrency, max_attempts or timeout", d.Name)
		}
		names[d.Name] = true
	}
	for i, rule := range r.Rules {
		label := rule.Name
		if label == "" {
			label = fmt.Sprintf("#%d", i+1)
		}
		if len(rule.On) == 0 {
			return fmt.Errorf("rule %s: on lists no event type", label)
		}
		for _, t := range rule.On {
			if !strings.HasPrefix(t, "ih.") {
				return fmt.Errorf("rule %s: event type %q is not ih.*", label, t)
			}
		}
		if len(rule.Forward) == 0 {
			return fmt.Errorf("rule %s: forward names no destination", label)
		}
		for _, f := range rule.Forward {
			if !names[f] {
				return fmt.Errorf("rule %s: unknown destination %q", label, f)
			}
		}
		if _, err := rule.Match.Regexps(); err != nil {
			return fmt.Errorf("rule %s: %v", label, err)
		}
		if rule.Match.TimeOfDay != "" {
			if _, _, err := ParseTimeOfDay(rule.Match.TimeOfDay); err != nil {
				return fmt.Errorf("rule %s: %v", label, err)
			}
		}
	}
	return nil
}

// ParseRemotes reads "AE=host:port,AE2=host:port" (dicom.remotes).
func ParseRemotes(s string) (map[string]string, error) {
	out := map[string]string{}
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		ae, addr, ok := strings.Cut(item, "=")
		if !ok {
			return nil, fmt.Errorf("%q: want AE=host:port", item)
		}
		ae, addr = strings.TrimSpace(ae), strings.TrimSpace(addr)
		if err := checkAE(ae); err != nil {
			return nil, err
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, fmt.Errorf("%q: %q is not host:port", item, addr)
		}
		if _, dup := out[ae]; dup {
			return nil, fmt.Errorf("AE %q listed twice", ae)
		}
		out[ae] = addr
	}
	return out, nil
}
