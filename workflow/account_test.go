package workflow_test

import (
	"context"
	"fmt"
	"github.com/imaginghub/imaginghub/internal/testenv"
	"strings"
	"testing"
	"time"

	"github.com/imaginghub/imaginghub/hl7"
)

// pidWithAccount is the scenario's PID segment with PID-18 (patient
// account number) as given; "" leaves the field empty.
func (s scenario) pidWithAccount(account string) string {
	f := make([]string, 19)
	f[0] = "PID"
	f[1] = "1"
	f[3] = fmt.Sprintf("%s^^^%s^MR", s.patientID, s.issuer)
	f[5] = "Synthetic^Sally^Q"
	f[7] = "19800101"
	f[8] = "F"
	f[18] = account
	return strings.TrimRight(strings.Join(f, "|"), "|")
}

func (s scenario) adtWithAccount(trigger string, seq int, account string) []byte {
	return seg(fmt.Sprintf(`MSH|^~\&|HIS|GENHOSP|IMAGINGHUB|RADIOLOGY|%s090000||ADT^%s|ADT-%d-%d|P|2.5`, s.today, trigger, s.n, seq),
		fmt.Sprintf(`EVN|%s|%s090000`, trigger, s.today),
		s.pidWithAccount(account),
		fmt.Sprintf(`PV1|1|O|RAD^1^A||||||||||||||||VIS-%d`, s.n))
}

func (s scenario) ormWithAccount(account string) []byte {
	b := string(s.orm())
	return []byte(strings.Replace(b, fmt.Sprintf(`PID|1||%s^^^%s||Synthetic^Sally^Q||19800101|F`, s.patientID, s.issuer), s.pidWithAccount(account), 1))
}

// The patient account number (PID-18) the HIS and the RIS send reaches
// the PMS in the DFT^P03's PID-18, component by component: from the visit
// the order names, updated by an A08; from the order when the HIS sent
// none; empty when no message carried one.
func TestDFTPatientAccount(t *testing.T) {
	ris, pms := startPeer(t), startPeer(t)
	rt, p := startHub(t, testConfig(t, ris, pms))
	const oid = "2.16.840.1.113883.3.999"
	type want struct{ id, authority, universalID, universalIDType string }
	cases := []struct {
		name string
		s    scenario
		send func(s scenario)
		// registry is PID-18.1 of the last ADT sent, which the registry
		// holds before the procedure completes; "-" when no ADT is sent.
		registry string
		want     want
	}{
		{"ADT and ORM with PID-18", newScenario(21), func(s scenario) {
			sendHL7(t, p.hl7.Addr(), s.adtWithAccount("A04", 1, "ACCT-21^^^GENHOSP&"+oid+"&ISO^AN"))
			sendHL7(t, p.hl7.Addr(), s.ormWithAccount("ACCT-21^^^GENHOSP&"+oid+"&ISO"))
		}, "ACCT-21", want{"ACCT-21", "GENHOSP", oid, "ISO"}},
		{"no PID-18 anywhere", newScenario(22), func(s scenario) {
			sendHL7(t, p.hl7.Addr(), s.adtWithAccount("A04", 1, ""))
			sendHL7(t, p.hl7.Addr(), s.ormWithAccount(""))
		}, "", want{}},
		{"A08 changes PID-18", newScenario(23), func(s scenario) {
			sendHL7(t, p.hl7.Addr(), s.adtWithAccount("A04", 1, "ACCT-23A^^^GENHOSP"))
			sendHL7(t, p.hl7.Addr(), s.ormWithAccount("ACCT-23A^^^GENHOSP"))
			sendHL7(t, p.hl7.Addr(), s.adtWithAccount("A08", 2, "ACCT-23B^^^BILLING"))
		}, "ACCT-23B", want{"ACCT-23B", "BILLING", "", ""}},
		{"only the ADT carries PID-18", newScenario(24), func(s scenario) {
			sendHL7(t, p.hl7.Addr(), s.adtWithAccount("A04", 1, "ACCT-24"))
			sendHL7(t, p.hl7.Addr(), s.ormWithAccount(""))
		}, "ACCT-24", want{"ACCT-24", "", "", ""}},
		{"only the ORM carries PID-18", newScenario(25), func(s scenario) {
			sendHL7(t, p.hl7.Addr(), s.ormWithAccount("ACCT-25^^^GENHOSP"))
		}, "-", want{"ACCT-25", "GENHOSP", "", ""}},
	}
	as := dialDICOM(t, p.in.Addr())
	defer as.Release(context.Background())
	for _, c := range cases {
		c.send(c.s)
		if c.registry != "-" {
			testenv.WaitFor(t, c.name+": the ADT applied", 10*time.Second, func() bool {
				var ps []struct {
					Account *struct{ IDNumber string }
				}
				httpJSON(t, "GET", "http://"+rt.Server.HTTPAddr()+"/api/patients?identifier="+c.s.patientID, nil, &ps)
				if len(ps) != 1 {
					return false
				}
				return c.registry == "" && ps[0].Account == nil || ps[0].Account != nil && ps[0].Account.IDNumber == c.registry
			})
		}
		c.s.acquire(t, as, 1)
	}
	dftOf := func(patientID string) *hl7.Message {
		for _, m := range pms.distinct() {
			if m.Header().MessageType == "DFT" && m.Get("PID-3.1") == patientID {
				return m
			}
		}
		return nil
	}
	testenv.WaitFor(t, "a DFT^P03 per procedure", 30*time.Second, func() bool {
		for _, c := range cases {
			if dftOf(c.s.patientID) == nil {
				return false
			}
		}
		return true
	})
	for _, c := range cases {
		m := dftOf(c.s.patientID)
		for loc, want := range map[string]string{
			"PID-18.1": c.want.id, "PID-18.2": "", "PID-18.3": "", "PID-18.4.1": c.want.authority,
			"PID-18.4.2": c.want.universalID, "PID-18.4.3": c.want.universalIDType,
			"PV1-19": fmt.Sprintf("VIS-%d", c.s.n), "FT1-6": "CG",
		} {
			if got := m.Get(loc); got != want {
				t.Errorf("%s: DFT %s = %q, want %q", c.name, loc, got, want)
			}
		}
		if c.want.id == "" && m.Get("PID-18") != "" {
			t.Errorf("%s: DFT PID-18 = %q, want empty", c.name, m.Get("PID-18"))
		}
	}
}
