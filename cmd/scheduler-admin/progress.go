package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// meter shows a long command's progress: a bar redrawn in place on a
// terminal, otherwise plain lines, at most one a second (and the last).
// With -json the progress goes to stderr, so stdout stays one JSON value.
type meter struct {
	w        io.Writer
	tty      bool
	every    time.Duration
	last     time.Time
	lastLine string
	width    int // of the previous bar, to blank its tail
}

func newMeter(a *admin) *meter {
	if a.opt.json {
		return &meter{w: a.errOut, tty: isTerminal(a.errOut), every: time.Second}
	}
	return &meter{w: a.out, tty: a.tty, every: time.Second}
}

// barWidth is the number of cells in a progress bar.
const barWidth = 30

// line renders label with done/total: a bar on a terminal.
func (m *meter) line(done, total int64, label string) string {
	if total <= 0 {
		return label
	}
	pct := min(100, max(0, done*100/total))
	if !m.tty {
		return fmt.Sprintf("%s: %d/%d (%d%%)", label, done, total, pct)
	}
	fill := int(min(barWidth, max(0, done*barWidth/total)))
	return fmt.Sprintf("%s [%s%s] %d/%d (%d%%)", label, strings.Repeat("#", fill), strings.Repeat(".", barWidth-fill), done, total, pct)
}

// show reports progress.
func (m *meter) show(done, total int64, label string) {
	s := m.line(done, total, label)
	if m.tty {
		m.draw(s)
		return
	}
	if s == m.lastLine || time.Since(m.last) < m.every {
		return
	}
	m.last, m.lastLine = time.Now(), s
	fmt.Fprintln(m.w, s)
}

// done reports the final state and ends the bar's line.
func (m *meter) done(done, total int64, label string) {
	s := m.line(done, total, label)
	if m.tty {
		m.draw(s)
		fmt.Fprintln(m.w)
		m.width = 0
		return
	}
	if s != m.lastLine {
		m.lastLine = s
		fmt.Fprintln(m.w, s)
	}
}

// abort ends a bar's line left open by a failure.
func (m *meter) abort() {
	if m.tty && m.width > 0 {
		fmt.Fprintln(m.w)
		m.width = 0
	}
}

func (m *meter) draw(s string) {
	pad := max(0, m.width-len(s))
	fmt.Fprintf(m.w, "\r%s%s", s, strings.Repeat(" ", pad))
	m.width = len(s)
}
