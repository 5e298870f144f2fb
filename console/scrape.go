package console

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxScrapeBytes bounds one /metrics answer.
const maxScrapeBytes = 16 << 20

// HTTPScraper scrapes /metrics over plain HTTP (the ops listener).
type HTTPScraper struct{ client *http.Client }

// NewHTTPScraper returns a scraper with its own connection pool; the
// caller's context bounds each scrape.
func NewHTTPScraper() *HTTPScraper {
	return &HTTPScraper{client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2}}}
}

// Scrape reads and parses http://addr/metrics in the text format.
func (s *HTTPScraper) Scrape(ctx context.Context, addr string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", addr, resp.Status)
	}
	return ParseMetrics(io.LimitReader(resp.Body, maxScrapeBytes))
}

// ParseMetrics parses the Prometheus text format.
func ParseMetrics(r io.Reader) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return fams, nil
}

// series is one metric's value per label set, summed (or maxed) over
// workers. The key is the label set as `a="1",b="2"` in name order.
type series map[string]float64

// hist is a histogram summed over workers: cumulative counts by upper
// bound.
type hist struct {
	bounds []float64 // sorted, +Inf last
	counts []float64
	count  float64
	sum    float64
}

// metrics is the cluster's metrics: each worker's scrape summed (counters,
// gauges, histograms) and, for gauges one worker exports for all (per
// queue figures), the maximum.
type metrics struct {
	sum   map[string]series
	max   map[string]series
	hists map[string]map[string]*hist // name -> label key -> histogram
}

func newMetrics() *metrics {
	return &metrics{sum: map[string]series{}, max: map[string]series{}, hists: map[string]map[string]*hist{}}
}

// labelKey renders m's labels, in name order, but those named in drop.
func labelKey(m *dto.Metric, drop ...string) string {
	ls := slices.Clone(m.GetLabel())
	sort.Slice(ls, func(i, j int) bool { return ls[i].GetName() < ls[j].GetName() })
	var b strings.Builder
	for _, l := range ls {
		if slices.Contains(drop, l.GetName()) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", l.GetName(), l.GetValue())
	}
	return b.String()
}

// add folds one worker's scrape in.
func (ms *metrics) add(fams map[string]*dto.MetricFamily) {
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			k := labelKey(m)
			var v float64
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				v = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				v = m.GetGauge().GetValue()
			case dto.MetricType_UNTYPED:
				v = m.GetUntyped().GetValue()
			case dto.MetricType_HISTOGRAM:
				ms.addHist(name, k, m.GetHistogram())
				continue
			default:
				continue
			}
			if math.IsNaN(v) {
				continue
			}
			if ms.sum[name] == nil {
				ms.sum[name], ms.max[name] = series{}, series{}
			}
			ms.sum[name][k] += v
			if old, ok := ms.max[name][k]; !ok || v > old {
				ms.max[name][k] = v
			}
		}
	}
}

func (ms *metrics) addHist(name, k string, h *dto.Histogram) {
	if ms.hists[name] == nil {
		ms.hists[name] = map[string]*hist{}
	}
	x := ms.hists[name][k]
	if x == nil {
		x = &hist{}
		ms.hists[name][k] = x
	}
	x.count += float64(h.GetSampleCount())
	x.sum += h.GetSampleSum()
	for _, b := range h.GetBucket() {
		ub, n := b.GetUpperBound(), float64(b.GetCumulativeCount())
		i, found := slices.BinarySearch(x.bounds, ub)
		if !found {
			x.bounds = slices.Insert(x.bounds, i, ub)
			x.counts = slices.Insert(x.counts, i, 0)
		}
		x.counts[i] += n
	}
}

// total is the sum of name over every label set.
func (ms *metrics) total(name string) float64 {
	var t float64
	for _, v := range ms.sum[name] {
		t += v
	}
	return t
}

// by returns name summed per value of label (the other labels summed away).
func (ms *metrics) by(name, label string) map[string]float64 {
	return group(ms.sum[name], label)
}

// maxBy returns name's maximum over workers per value of label.
func (ms *metrics) maxBy(name, label string) map[string]float64 {
	return group(ms.max[name], label)
}

func group(s series, label string) map[string]float64 {
	out := map[string]float64{}
	prefix := label + "="
	for k, v := range s {
		for part := range strings.SplitSeq(k, ",") {
			if val, ok := strings.CutPrefix(part, prefix); ok {
				out[strings.Trim(val, `"`)] += v
			}
		}
	}
	return out
}

// histBy returns name's histograms per value of label.
func (ms *metrics) histBy(name, label string) map[string]*hist {
	out := map[string]*hist{}
	prefix := label + "="
	for k, h := range ms.hists[name] {
		for part := range strings.SplitSeq(k, ",") {
			if val, ok := strings.CutPrefix(part, prefix); ok {
				out[strings.Trim(val, `"`)] = h
			}
		}
	}
	return out
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linear within the bucket holding it; NaN without observations.
func (h *hist) quantile(q float64) float64 {
	if h == nil || len(h.counts) == 0 {
		return math.NaN()
	}
	total := max(h.counts[len(h.counts)-1], h.count)
	if total == 0 {
		return math.NaN()
	}
	rank := q * total
	i := sort.Search(len(h.counts), func(i int) bool { return h.counts[i] >= rank })
	if i == len(h.counts) || math.IsInf(h.bounds[i], 1) {
		// Beyond the last finite bound: that bound, as histogram_quantile does.
		for j := min(i, len(h.bounds)) - 1; j >= 0; j-- {
			if !math.IsInf(h.bounds[j], 1) {
				return h.bounds[j]
			}
		}
		return math.NaN()
	}
	lower, below := 0.0, 0.0
	if i > 0 {
		lower, below = h.bounds[i-1], h.counts[i-1]
	}
	in := h.counts[i] - below
	if in <= 0 {
		return h.bounds[i]
	}
	return lower + (h.bounds[i]-lower)*(rank-below)/in
}
