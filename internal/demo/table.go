package demo

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/tungate/tungate/internal/lab"
)

// WriteTable prints rows as an aligned table.
func WriteTable(w io.Writer, rows []Row) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHECK\tEXPECTED\tOBSERVED\tOK")
	for _, r := range rows {
		ok := "ok"
		if !r.OK {
			ok = "FAIL"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Name, r.Expected, r.Observed, ok)
	}
	tw.Flush()
}

// WriteDecisions prints the gateway's decision log lines (those with a
// rule and an action) compactly, in the order they were logged.
func WriteDecisions(w io.Writer, logs []string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	n := 0
	for _, line := range logs {
		rec, ok := lab.ParseLog(line)
		if !ok || rec["action"] == nil || rec["rule"] == nil {
			continue
		}
		if n == 0 {
			fmt.Fprintln(tw, "gateway decisions:")
			fmt.Fprintln(tw, "  ACTION\tRULE\tPROTO\tFLOW\tREASON\tDETAIL")
		}
		n++
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s -> %s\t%s\t%s\n",
			field(rec, "action"), field(rec, "rule"), field(rec, "proto"),
			field(rec, "src"), field(rec, "dst"), field(rec, "reason"), detail(rec))
	}
	if n == 0 {
		fmt.Fprintln(tw, "gateway decisions: none logged")
	}
	tw.Flush()
}

func field(rec map[string]any, k string) string {
	v, ok := rec[k]
	if !ok || v == nil {
		return "-"
	}
	s := fmt.Sprint(v)
	if s == "" {
		return "-"
	}
	return strings.ReplaceAll(s, "\t", " ")
}

// detailKeys are the decision-line attributes that say what inspection
// read: the field value or pattern that decided.
var detailKeys = []string{"sni", "http_host", "http_method", "http_path", "dns_qname", "pattern"}

func detail(rec map[string]any) string {
	for _, k := range detailKeys {
		if v := field(rec, k); v != "-" {
			return k + "=" + v
		}
	}
	return "-"
}
