package bench

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Metric names one figure of the report.
type Metric struct {
	Key   string `json:"key"`   // stable, for the JSON file and scripts
	Label string `json:"label"` // for the table
	Unit  string `json:"unit"`
}

// Row is one metric measured on every variant; a nil value was not
// measured or does not apply (a kernel variant has no gateway process).
type Row struct {
	Metric
	Values []*float64 `json:"values"`
	// Ratio is the RatioNum variant over the RatioDen variant, when both
	// exist and the denominator is not zero.
	Ratio *float64 `json:"ratio"`
}

// Report is the whole result of one run, as printed and as written to
// bench/results.
type Report struct {
	Started  time.Time `json:"started"`
	Elapsed  string    `json:"elapsed"`
	Host     Host      `json:"host"`
	Quick    bool      `json:"quick"`
	Duration string    `json:"duration_per_test"`
	Variants []string  `json:"variants"`
	RatioNum string    `json:"ratio_num"`
	RatioDen string    `json:"ratio_den"`
	Rows     []Row     `json:"rows"`
	Notes    []string  `json:"notes,omitempty"`
	// Errors are the measurements that failed; their cells are missing
	// and footnoted in the table. The run itself still completed.
	Errors []RunError `json:"errors"`
	// PayloadRatio is, per TCP bulk test, the "payload" variant's
	// throughput over the "tungate" variant's.
	PayloadRatio map[string]float64 `json:"payload_ratio,omitempty"`
}

// Host describes the machine a report was taken on.
type Host struct {
	Kernel string `json:"kernel"`
	CPUs   int    `json:"cpus"`
	Go     string `json:"go"`
	Iperf3 string `json:"iperf3"`
	Nft    string `json:"nft"`
	Peer   string `json:"peer,omitempty"`
	// LoadAvg is /proc/loadavg at the start: figures taken on a busy
	// host are noise.
	LoadAvg string `json:"loadavg"`
}

// RunError is one measurement that failed: a test in one variant's
// column, or the whole column when Test is empty.
type RunError struct {
	Variant string `json:"variant"`
	Test    string `json:"test,omitempty"`
	Reason  string `json:"reason"`
}

func (e RunError) String() string {
	if e.Test == "" {
		return e.Variant + ": " + e.Reason
	}
	return e.Variant + ", " + e.Test + ": " + e.Reason
}

// TestOf is the test a metric key belongs to: the key up to its first dot
// ("udp_1400.kpps" -> "udp_1400").
func TestOf(key string) string {
	t, _, _ := strings.Cut(key, ".")
	return t
}

// errorFor is the index in errs of the failure that explains a missing
// value of metric key in variant's column, or -1.
func errorFor(errs []RunError, variant, key string) int {
	for i, e := range errs {
		if e.Variant == variant && (e.Test == "" || e.Test == TestOf(key)) {
			return i
		}
	}
	return -1
}

// BuildRows turns per-variant results (variant -> metric key -> value)
// into rows in the order of metrics, leaving out metrics no variant has
// and no failure explains.
func BuildRows(metrics []Metric, variants []string, results map[string]map[string]float64, errs []RunError, num, den string) []Row {
	var rows []Row
	for _, m := range metrics {
		row := Row{Metric: m, Values: make([]*float64, len(variants))}
		any := false
		for i, v := range variants {
			if x, ok := results[v][m.Key]; ok && !math.IsNaN(x) && !math.IsInf(x, 0) {
				row.Values[i] = &x
				any = true
			} else if errorFor(errs, v, m.Key) >= 0 {
				any = true
			}
		}
		if !any {
			continue
		}
		n, okN := results[num][m.Key]
		d, okD := results[den][m.Key]
		if okN && okD && d != 0 && !math.IsNaN(n/d) && !math.IsInf(n/d, 0) {
			r := n / d
			row.Ratio = &r
		}
		rows = append(rows, row)
	}
	return rows
}

// FormatValue prints a figure with about three significant digits.
func FormatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	case a == 0:
		return "0"
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// FormatTable writes the report as one aligned text table: a metric per
// line, a column per variant, then the ratio column; a value missing
// because its test failed is "-[n]", with footnote n under the table.
func FormatTable(w io.Writer, r Report) error {
	var foot []int // indexes into r.Errors, in footnote order
	mark := map[int]int{}
	footnote := func(i int) string {
		n, ok := mark[i]
		if !ok {
			foot = append(foot, i)
			n = len(foot)
			mark[i] = n
		}
		return fmt.Sprintf("-[%d]", n)
	}
	head := []string{"metric"}
	head = append(head, r.Variants...)
	ratioHead := r.RatioNum + "/" + r.RatioDen
	head = append(head, ratioHead)
	cells := [][]string{head}
	for _, row := range r.Rows {
		label := row.Label
		if row.Unit != "" {
			label += " (" + row.Unit + ")"
		}
		line := []string{label}
		for i, v := range row.Values {
			if v == nil {
				cell := "-"
				if i < len(r.Variants) {
					if e := errorFor(r.Errors, r.Variants[i], row.Key); e >= 0 {
						cell = footnote(e)
					}
				}
				line = append(line, cell)
			} else {
				line = append(line, FormatValue(*v))
			}
		}
		if row.Ratio == nil {
			line = append(line, "-")
		} else {
			line = append(line, fmt.Sprintf("%.2fx", *row.Ratio))
		}
		cells = append(cells, line)
	}
	width := make([]int, len(head))
	for _, line := range cells {
		for i, c := range line {
			width[i] = max(width[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for n, line := range cells {
		for i, c := range line {
			pad := strings.Repeat(" ", width[i]-len([]rune(c)))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		b.WriteByte('\n')
		if n == 0 {
			total := len(width)*2 - 2
			for _, x := range width {
				total += x
			}
			b.WriteString(strings.Repeat("-", total) + "\n")
		}
	}
	for n, i := range foot {
		fmt.Fprintf(&b, "[%d] %s\n", n+1, r.Errors[i])
	}
	_, err := io.WriteString(w, b.String())
	return err
}
