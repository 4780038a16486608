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

// BuildRows turns per-variant results (variant -> metric key -> value)
// into rows in the order of metrics, leaving out metrics no variant has.
func BuildRows(metrics []Metric, variants []string, results map[string]map[string]float64, num, den string) []Row {
	var rows []Row
	for _, m := range metrics {
		row := Row{Metric: m, Values: make([]*float64, len(variants))}
		any := false
		for i, v := range variants {
			if x, ok := results[v][m.Key]; ok && !math.IsNaN(x) && !math.IsInf(x, 0) {
				row.Values[i] = &x
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
// line, a column per variant, then the ratio column.
func FormatTable(w io.Writer, r Report) error {
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
		for _, v := range row.Values {
			if v == nil {
				line = append(line, "-")
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
	_, err := io.WriteString(w, b.String())
	return err
}
