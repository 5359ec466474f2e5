package analyze

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
)

// WriteTable writes the RLAs (at most top; 0 = all), most excess first, as
// a table, then the summary by root cause. Plain output (for pipes and
// scripts) writes each table as a header line and rows of tab-separated
// cells instead of drawn boxes.
func WriteTable(w io.Writer, res *Result, top int, plain bool) error {
	fmt.Fprintf(w, "%d requests, %d RPCs (%d incomplete), %d RLAs", res.Stats.Requests, res.Stats.RPCs, res.Stats.Incomplete, len(res.RLAs))
	if res.SLO > 0 {
		fmt.Fprintf(w, " (SLO %s)", dur(res.SLO))
	}
	fmt.Fprintf(w, "; %d records, %d events\n", res.Stats.Records, res.Stats.Events)
	if len(res.RLAs) == 0 {
		return nil
	}
	rows := res.RLAs
	if top > 0 && len(rows) > top {
		rows = rows[:top]
	}
	cells := make([][]string, 0, len(rows))
	for _, q := range rows {
		rc, ev, conf, cul := "-", "-", "-", "-"
		if d := q.Diagnosis; d != nil {
			rc, ev, conf = d.Buffer, d.Event, fmt.Sprintf("%.0f%%", 100*d.Confidence)
			if len(d.Culprits) > 0 {
				c := d.Culprits[0]
				cul = fmt.Sprintf("%s %.0f%%", c.Flow, 100*c.Share)
				if d.Pattern != "" {
					cul += " (" + d.Pattern + ")"
				}
			}
		}
		cells = append(cells, []string{q.ID, time.Unix(0, q.Start).UTC().Format("15:04:05.000"), dur(q.Latency), dur(q.Excess),
			ruleNames(q.Rules), rc, ev, conf, cul})
	}
	if err := writeCells(w, plain, []string{"request", "start", "latency", "excess", "rule", "root cause", "event", "conf", "top culprit"}, cells); err != nil {
		return err
	}
	if top > 0 && len(res.RLAs) > top {
		fmt.Fprintf(w, "(%d more; --top 0 shows all)\n", len(res.RLAs)-top)
	}
	fmt.Fprintln(w)
	cells = cells[:0]
	for _, c := range res.Summary {
		cells = append(cells, []string{c.Buffer, c.Event, fmt.Sprint(c.RLAs), dur(c.Excess)})
	}
	return writeCells(w, plain, []string{"root cause", "event", "count", "excess"}, cells)
}

// writeCells draws a table, or writes tab-separated lines when plain.
func writeCells(w io.Writer, plain bool, header []string, rows [][]string) error {
	if plain {
		if _, err := fmt.Fprintln(w, strings.Join(header, "\t")); err != nil {
			return err
		}
		for _, r := range rows {
			if _, err := fmt.Fprintln(w, strings.Join(r, "\t")); err != nil {
				return err
			}
		}
		return nil
	}
	t := tablewriter.NewWriter(w)
	t.Header(header)
	for _, r := range rows {
		if err := t.Append(r); err != nil {
			return err
		}
	}
	return t.Render()
}

func ruleNames(rs []Rule) string {
	var names []string
	seen := map[string]bool{}
	for _, r := range rs {
		if !seen[r.Name] {
			seen[r.Name] = true
			names = append(names, r.Name)
		}
	}
	return strings.Join(names, ",")
}

// WriteJSON writes res as one JSON document (docs/analyze-json.md),
// keeping at most top RLAs (0 = all).
func WriteJSON(w io.Writer, res *Result, top int) error {
	out := *res
	if top > 0 && len(out.RLAs) > top {
		out.RLAs = out.RLAs[:top]
	}
	if out.RLAs == nil {
		out.RLAs = []*Request{}
	}
	if out.Summary == nil {
		out.Summary = []Cause{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(&out)
}

// Find returns the RLA whose request, trace or RPC ID is id (with or
// without 0x and leading zeros), or nil.
func (res *Result) Find(id string) *Request {
	want := normID(id)
	for _, q := range res.RLAs {
		if normID(q.ID) == want || q.TraceID != "" && normID(q.TraceID) == want {
			return q
		}
		for _, r := range q.RPCs {
			if normID(r.ID) == want {
				return q
			}
		}
	}
	return nil
}

func normID(s string) string {
	s = strings.ToLower(strings.TrimPrefix(strings.TrimPrefix(s, "0x"), "0X"))
	s = strings.TrimLeft(s, "0")
	return s
}

// Explain writes one RLA in full: its RPCs, each RPC's chain with times,
// baselines and excess, the root cause with its evidence, the culprits and
// the consequences.
func Explain(w io.Writer, q *Request) error {
	ew := &errWriter{w: w}
	ew.printf("request %s  latency %s  excess %s  start %s\n", q.ID, dur(q.Latency), dur(q.Excess), ts(q.Start))
	for _, r := range q.Rules {
		ew.printf("  flagged by %s: %s\n", r.Name, r.Detail)
	}
	for _, r := range q.RPCs {
		mark := " "
		if r.ID == q.Critical {
			mark = "*"
		}
		ew.printf("%s rpc %s  %s -> %s  latency %s  server %s  class %s", mark, r.ID, r.Client, r.Server, dur(r.Latency), dur(r.ServerTime), r.Class)
		if r.Incomplete {
			ew.printf("  (response incomplete)")
		}
		ew.printf("\n")
		for _, m := range []struct {
			name string
			t    MessageTiming
		}{{"request", r.Request}, {"response", r.Response}} {
			if m.t.Bytes == 0 && m.t.Start == 0 {
				continue
			}
			ew.printf("    %-8s %7d B  %s .. %s", m.name, m.t.Bytes, ts(m.t.Start), ts(m.t.End))
			if m.t.Inferred {
				ew.printf("  (first segment not captured: attributed by sequence continuity)")
			}
			if m.t.Retransmits > 0 {
				ew.printf("  %d retransmissions, waited %s", m.t.Retransmits, dur(m.t.RetransmitWait))
				if m.t.lossless {
					ew.printf(" (spurious: the receiver got the originals, D-SACK)")
				} else if m.t.SpuriousRetransmits > 0 {
					ew.printf(" (%d segments spurious, D-SACK)", m.t.SpuriousRetransmits)
				}
			}
			ew.printf("\n")
		}
		if r.ID != q.Critical {
			continue
		}
		ew.printf("    chain:\n")
		for _, e := range r.Chain {
			ew.printf("      %-8s %-34s %10s  baseline %10s  excess %10s", e.Dir, e.Buffer, dur(e.Time), dur(e.Baseline), dur(e.Excess))
			if e.Reports > 0 {
				ew.printf("  (%d reports)", e.Reports)
			}
			if e.Estimate != nil {
				ew.printf("  (estimated from %d reports of the queue)", len(e.Estimate.From))
			}
			ew.printf("\n")
		}
		for _, c := range r.Effects {
			ew.printf("    consequence: %s (%s) x%d", c.Kind, c.Dir, c.Count)
			if c.Wait > 0 {
				ew.printf(" waited %s", dur(c.Wait))
			}
			if c.CausedBy != 0 {
				ew.printf(" caused by event #%d", c.CausedBy)
			}
			ew.printf("\n")
		}
	}
	d := q.Diagnosis
	if d == nil {
		ew.printf("root cause: none found (no element holds excess latency)\n")
		return ew.err
	}
	ew.printf("root cause: %s %s  explains %s (confidence %.0f%%)", d.Buffer, d.Event, dur(d.Explained), 100*d.Confidence)
	if d.Estimated {
		ew.printf("  estimated: the message was not reported there")
	}
	ew.printf("\n")
	if d.EventID != 0 {
		ew.printf("  event #%d %s .. %s  magnitude %d\n", d.EventID, ts(d.Start), ts(d.End), d.Magnitude)
	}
	for _, e := range d.Evidence {
		ew.printf("  evidence %s  %s %s", ts(e.Time), e.Kind, FlowString(e.Flow))
		if e.Latency != 0 {
			ew.printf(" residence %s", dur(int64(e.Latency)))
		}
		if e.Occupancy != 0 {
			ew.printf(" occupancy %d", e.Occupancy)
		}
		if e.Drop != "" {
			ew.printf(" drop %s", e.Drop)
		}
		if e.Note != "" {
			ew.printf(" (%s)", e.Note)
		}
		ew.printf("\n")
	}
	for i, c := range d.Culprits {
		if i == 10 {
			ew.printf("  ... %d more culprits\n", len(d.Culprits)-i)
			break
		}
		self := ""
		if c.Self {
			self = " (this request's connection)"
		}
		ew.printf("  culprit %-44s %10d B %5.1f%%%s\n", c.Flow, c.Bytes, 100*c.Share, self)
	}
	if d.Pattern != "" {
		ew.printf("  pattern: %s\n", d.Pattern)
	}
	return ew.err
}

func ts(ns int64) string {
	if ns == 0 {
		return "-"
	}
	return time.Unix(0, ns).UTC().Format("15:04:05.000000")
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}
