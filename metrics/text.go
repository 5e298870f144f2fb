package metrics

import (
	"bytes"
	"math"
	"strconv"
	"strings"
)

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

// escapeHelp escapes a HELP text for the text format.
func escapeHelp(s string) string { return helpEscaper.Replace(strings.ToValidUTF8(s, "\uFFFD")) }

// sampleLabels are the labels of one sample line.
type sampleLabels struct {
	names, values []string // the series' labels and their values
	le            string   // a histogram bucket's upper bound; "" for none
}

// writeSample appends one sample line: name{labels...,le="..."} value.
func writeSample(b *bytes.Buffer, name string, l sampleLabels, v float64) {
	labels, values := l.names, l.values
	b.WriteString(name)
	if len(labels) > 0 || l.le != "" {
		b.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				b.WriteByte(',')
			}
			writeLabel(b, l, values[i])
		}
		if l.le != "" {
			if len(labels) > 0 {
				b.WriteByte(',')
			}
			writeLabel(b, "le", l.le)
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(formatFloat(v))
	b.WriteByte('\n')
}

// writeLabel appends name="escaped value".
func writeLabel(b *bytes.Buffer, name, value string) {
	b.WriteString(name)
	b.WriteString(`="`)
	b.WriteString(valueEscaper.Replace(strings.ToValidUTF8(value, "\uFFFD")))
	b.WriteByte('"')
}

// formatFloat formats v as Prometheus expects, with +Inf, -Inf and NaN
// spelled out.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
