package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateDeadlines(t *testing.T) {
	tests := []struct {
		name   string
		modify func(w *Worker)
		want   string // substring of the error; "" means valid
	}{
		{"defaults ok", func(*Worker) {}, ""},
		{"negative request timeout", func(w *Worker) { w.RequestTimeout = -1 }, "request_timeout: must be positive"},
		{"write timeout within the request deadline", func(w *Worker) { w.HTTPWriteTimeout = w.RequestTimeout }, "http_write_timeout: must be longer than request_timeout"},
		{"header timeout over read timeout", func(w *Worker) { w.HTTPReadHeaderTimeout = Duration(time.Minute) }, "http_read_header_timeout: must not exceed"},
		{"zero idle timeout", func(w *Worker) { w.HTTPIdleTimeout = 0 }, "http_idle_timeout: must be positive"},
		{"in-flight cap too big", func(w *Worker) { w.MaxInFlight = MaxMaxInFlight + 1 }, "max_in_flight:"},
		{"negative in-flight cap", func(w *Worker) { w.MaxInFlight = -1 }, "max_in_flight:"},
		{"tiny header limit", func(w *Worker) { w.HTTPMaxHeaderBytes = 100 }, "http_max_header_bytes:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := valid()
			tt.modify(&w)
			err := w.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate: %v", err)
			case tt.want != "" && err == nil:
				t.Errorf("Validate passed, want error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("Validate = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestDeadlineEnv(t *testing.T) {
	env := map[string]string{
		EnvPrefix + "REDIS_ADDR":      "127.0.0.1:6379",
		EnvPrefix + "MYSQL_DSN":       "u:p@tcp(127.0.0.1:3306)/couponpush",
		EnvPrefix + "NSQD_TCP":        "127.0.0.1:4150",
		EnvPrefix + "REQUEST_TIMEOUT": "2s",
		EnvPrefix + "MAX_IN_FLIGHT":   "7",
		EnvPrefix + "AUTH":            "off",
	}
	w, err := LoadWorker([]string{"-http-max-header-bytes", "8192"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("LoadWorker: %v", err)
	}
	if w.HTTPMaxHeaderBytes != 8192 {
		t.Fatalf("from flag: http_max_header_bytes %d; want 8192", w.HTTPMaxHeaderBytes)
	}
	if w.RequestTimeout != Duration(2*time.Second) || w.MaxInFlight != 7 {
		t.Fatalf("from env: request_timeout %v, max_in_flight %d; want 2s, 7", w.RequestTimeout, w.MaxInFlight)
	}
}
