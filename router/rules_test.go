package router

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/config"
)

func TestRules(t *testing.T) {
	rules, err := CompileRules([]config.Rule{
		{Name: "ct-chest", On: []string{"ih.dicom.instance.stored"}, Match: config.RuleMatch{Modality: "^CT$", BodyPartExamined: "(?i)^chest$"}, Forward: []string{"chest"}},
		{Name: "from-er", On: []string{"ih.dicom.instance.stored", "ih.dicom.study.stable"}, Match: config.RuleMatch{CallingAE: "^ER_", InstitutionName: "GENERAL"}, Forward: []string{"er", "chest"}},
		{Name: "mammo", On: []string{"ih.dicom.instance.stored"}, Match: config.RuleMatch{SOPClassUID: `^1\.2\.840\.10008\.5\.1\.4\.1\.1\.1\.2(\.1)?$`}, Forward: []string{"mammo"}},
		{Name: "night", On: []string{"ih.dicom.study.stable"}, Match: config.RuleMatch{TimeOfDay: "22:00-06:00", StudyDescription: "(?i)head"}, Forward: []string{"telerad"}},
		{Name: "reconciled", On: []string{"ih.study.reconciled"}, Forward: []string{"hook"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	at := func(hhmm string) time.Time {
		tm, _ := time.ParseInLocation("15:04", hhmm, time.Local)
		return time.Date(2025, 3, 1, tm.Hour(), tm.Minute(), 0, 0, time.Local)
	}
	for _, tc := range []struct {
		name string
		a    Attributes
		want []string
	}{
		{"ct chest", Attributes{Type: "ih.dicom.instance.stored", Modality: []string{"CT"}, BodyPartExamined: []string{"CHEST"}}, []string{"chest"}},
		{"ct head", Attributes{Type: "ih.dicom.instance.stored", Modality: []string{"CT"}, BodyPartExamined: []string{"HEAD"}}, nil},
		{"absent attribute is empty", Attributes{Type: "ih.dicom.instance.stored", Modality: []string{"CT"}}, nil},
		{"ct chest from the ER", Attributes{Type: "ih.dicom.instance.stored", Modality: []string{"CT"}, BodyPartExamined: []string{"Chest"},
			CallingAE: []string{"ER_CT1"}, InstitutionName: []string{"ST MARY GENERAL"}}, []string{"chest", "er"}},
		{"wrong event type", Attributes{Type: "ih.dicom.study.stable", Modality: []string{"CT"}, BodyPartExamined: []string{"CHEST"}}, nil},
		{"study with one matching modality", Attributes{Type: "ih.dicom.study.stable", CallingAE: []string{"CT01", "ER_US"}, InstitutionName: []string{"GENERAL"}}, []string{"er", "chest"}},
		{"mammography class", Attributes{Type: "ih.dicom.instance.stored", SOPClassUID: []string{"1.2.840.10008.5.1.4.1.1.1.2.1"}}, []string{"mammo"}},
		{"not mammography", Attributes{Type: "ih.dicom.instance.stored", SOPClassUID: []string{"1.2.840.10008.5.1.4.1.1.1.2.1.5"}}, nil},
		{"night, late", Attributes{Type: "ih.dicom.study.stable", Time: at("23:30"), StudyDescription: []string{"CT HEAD"}}, []string{"telerad"}},
		{"night, early", Attributes{Type: "ih.dicom.study.stable", Time: at("05:59"), StudyDescription: []string{"CT HEAD"}}, []string{"telerad"}},
		{"night ends at six", Attributes{Type: "ih.dicom.study.stable", Time: at("06:00"), StudyDescription: []string{"CT HEAD"}}, nil},
		{"day", Attributes{Type: "ih.dicom.study.stable", Time: at("12:00"), StudyDescription: []string{"CT HEAD"}}, nil},
		{"any other event", Attributes{Type: "ih.study.reconciled"}, []string{"hook"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Destinations(rules, tc.a); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestInTimeOfDay(t *testing.T) {
	for _, tc := range []struct {
		m, from, to int
		want        bool
	}{
		{480, 480, 1020, true}, {1019, 480, 1020, true}, {1020, 480, 1020, false}, {479, 480, 1020, false},
		{1380, 1320, 360, true}, {0, 1320, 360, true}, {360, 1320, 360, false}, {720, 1320, 360, false},
		{720, 600, 600, true},
	} {
		if got := inTimeOfDay(tc.m, tc.from, tc.to); got != tc.want {
			t.Errorf("inTimeOfDay(%d, %d, %d) = %v", tc.m, tc.from, tc.to, got)
		}
	}
}

func TestCompileRulesRejects(t *testing.T) {
	for _, r := range []config.Rule{
		{On: []string{"ih.x"}, Match: config.RuleMatch{Modality: "("}, Forward: []string{"a"}},
		{On: []string{"ih.x"}, Match: config.RuleMatch{TimeOfDay: "25:00-26:00"}, Forward: []string{"a"}},
	} {
		if _, err := CompileRules([]config.Rule{r}); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", r, err)
		}
	}
}

func TestTokenAndMsgID(t *testing.T) {
	for _, tc := range []struct{ name, want string }{
		{"pacs-1", "pacs-1"}, {"PACS_A", "PACS_A"}, {"st. mary", "x73742e206d617279"}, {"a>b", "x613e62"},
	} {
		if got := Token(tc.name); got != tc.want {
			t.Errorf("Token(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
	a := Job{Destination: "pacs", SOPInstanceUID: "1.2.3", BlobKey: "k1"}
	b := a
	b.Rule = "another rule"
	c := a
	c.BlobKey = "k2"
	d := Job{Destination: "hook", EventID: "e1"}
	if a.MsgID() != b.MsgID() || a.MsgID() == c.MsgID() || a.MsgID() == d.MsgID() {
		t.Errorf("MsgID: same delivery must share it, others not: %s %s %s %s", a.MsgID(), b.MsgID(), c.MsgID(), d.MsgID())
	}
}

func TestSignature(t *testing.T) {
	body := []byte(`{"specversion":"1.0"}`)
	sig := Sign("k", body)
	// Computed independently: printf '%s' BODY | openssl dgst -sha256 -hmac k
	if sig != "sha256=2eb4d0aa7b8e354b2e7b09a340ab5072c4ae9d0fd4c2494b0883457aad3bf166" {
		t.Errorf("Sign = %s", sig)
	}
	if !Verify("k", body, sig) || Verify("k2", body, sig) || Verify("k", append(body, ' '), sig) {
		t.Errorf("signature %s", sig)
	}
}
